import { z } from "zod";
import { CHUNKER_ALGORITHM, type ChunkerParams, chunkerParamsProblems } from "./chunker-params.ts";
import { DIGEST_PATTERN, sha256Hex } from "./hash.ts";

/** Version of the manifest format; a manifest of another version is refused. */
export const MANIFEST_VERSION = 1;

/**
 * Most chunks one manifest may list. 10 GB at the default 4 MiB average is about 2,500 chunks;
 * the cap keeps a hostile manifest from costing much to check or to act on.
 */
export const MAX_MANIFEST_CHUNKS = 100_000;

/** Application names: lowercase DNS-label-like slugs. */
export const APP_NAME_PATTERN: RegExp = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Git commit ids: 40 hex (SHA-1 repositories) or 64 hex (SHA-256 repositories), lowercase. */
export const COMMIT_SHA_PATTERN: RegExp = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** One chunk in a manifest, in file order. */
export interface ManifestChunk {
  /** SHA-256 of the chunk's bytes: its key `chunks/<digest>` in every bucket. */
  readonly digest: string;
  readonly size: number;
}

/** DESIGN section 5: what an agent needs to fetch, check and assemble one build's binary. */
export interface Manifest {
  readonly version: typeof MANIFEST_VERSION;
  readonly app: string;
  readonly build_id: number;
  readonly commit_sha: string;
  /** When the artifact was chunked: ISO 8601 in UTC (`...Z`). */
  readonly created_at: string;
  /** Bytes in the whole file: the sum of the chunk sizes. */
  readonly size: number;
  /** SHA-256 of the whole file, lowercase hex. */
  readonly sha256: string;
  readonly chunker: ChunkerParams;
  readonly chunks: readonly ManifestChunk[];
}

const digest = z.string().regex(DIGEST_PATTERN, "must be 64 lowercase hex characters");
const size = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

const chunkerSchema = z
  .strictObject({
    algorithm: z.literal(CHUNKER_ALGORITHM),
    min_size: z.int(),
    avg_size: z.int(),
    max_size: z.int(),
    normalization: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]),
  })
  .check((ctx) => {
    for (const message of chunkerParamsProblems(ctx.value)) {
      ctx.issues.push({ code: "custom", message, input: ctx.value });
    }
  });

/** The manifest's schema (strict: unknown fields are refused). Prefer `checkManifest`. */
export const manifestSchema = z
  .strictObject({
    version: z.literal(MANIFEST_VERSION),
    app: z.string().regex(APP_NAME_PATTERN, "must be a lowercase slug of at most 63 characters"),
    build_id: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
    commit_sha: z.string().regex(COMMIT_SHA_PATTERN, "must be a 40 or 64 hex commit id"),
    created_at: z.iso.datetime(),
    size,
    sha256: digest,
    chunker: chunkerSchema,
    chunks: z
      .array(z.strictObject({ digest, size: size.min(1) }))
      .max(MAX_MANIFEST_CHUNKS, `at most ${MAX_MANIFEST_CHUNKS} chunks`),
  })
  .check((ctx) => {
    const problems = chunkListProblems(ctx.value);
    for (const { path, message } of problems) {
      ctx.issues.push({ code: "custom", path, message, input: ctx.value });
    }
  });

/** What FastCDC promises about chunk sizes, and that the sizes add up to the file's size. */
function chunkListProblems(
  m: z.infer<typeof manifestSchema>,
): { path: PropertyKey[]; message: string }[] {
  const problems: { path: PropertyKey[]; message: string }[] = [];
  const { max_size, min_size } = m.chunker;
  // The crate may cut at min_size rounded down to even (it scans in pairs of bytes).
  const smallest = min_size - (min_size % 2);
  let total = 0;
  m.chunks.forEach((chunk, i) => {
    total += chunk.size;
    if (problems.length >= 10) return;
    if (chunk.size > max_size) {
      problems.push({
        path: ["chunks", i, "size"],
        message: `exceeds chunker max_size ${max_size}`,
      });
    } else if (i < m.chunks.length - 1 && chunk.size < smallest) {
      problems.push({ path: ["chunks", i, "size"], message: `below chunker min_size ${smallest}` });
    }
  });
  if (total !== m.size) {
    problems.push({
      path: ["size"],
      message: `is ${m.size} but the chunk sizes add up to ${total}`,
    });
  }
  return problems;
}

/** The outcome of checking an untrusted value against the manifest format. */
export type ManifestCheck =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly issues: readonly string[] };

/** Checks `value` (parsed JSON) against the manifest format, reporting every problem found. */
export function checkManifest(value: unknown): ManifestCheck {
  const result = manifestSchema.safeParse(value);
  if (result.success) return { ok: true, manifest: result.data };
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return { ok: false, issues };
}

/** A manifest that is not well formed; `issues` lists every problem found. */
export class ManifestError extends Error {
  override name = "ManifestError";
  readonly issues: readonly string[];
  constructor(issues: readonly string[], options?: ErrorOptions) {
    super(`invalid manifest: ${issues.join("; ")}`, options);
    this.issues = issues;
  }
}

/** `value` as a Manifest, or a ManifestError listing what is wrong. */
export function parseManifest(value: unknown): Manifest {
  const check = checkManifest(value);
  if (!check.ok) throw new ManifestError(check.issues);
  return check.manifest;
}

/**
 * The canonical bytes of a manifest: UTF-8 JSON, no whitespace, keys in a fixed order. These
 * are the bytes stored as `manifests/<build_id>.json` and the bytes signed.
 */
export function encodeManifest(manifest: Manifest): Uint8Array {
  return canonicalBytes(parseManifest(manifest));
}

function canonicalBytes(m: Manifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(canonicalObject(m)));
}

function canonicalObject(m: Manifest): Manifest {
  const { algorithm, min_size, avg_size, max_size, normalization } = m.chunker;
  return {
    version: m.version,
    app: m.app,
    build_id: m.build_id,
    commit_sha: m.commit_sha,
    created_at: m.created_at,
    size: m.size,
    sha256: m.sha256,
    chunker: { algorithm, min_size, avg_size, max_size, normalization },
    chunks: m.chunks.map(({ digest, size }) => ({ digest, size })),
  };
}

/**
 * The manifest in `bytes` (UTF-8 JSON). Refuses bytes that are not valid JSON, not a valid
 * manifest, or not in canonical form, so that one manifest has exactly one byte encoding.
 */
export function decodeManifest(bytes: Uint8Array): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (cause) {
    throw new ManifestError(["not UTF-8 JSON"], { cause });
  }
  const manifest = parseManifest(value);
  if (!sameBytes(canonicalBytes(manifest), bytes)) {
    throw new ManifestError(["not in canonical form (fixed key order, no whitespace)"]);
  }
  return manifest;
}

/** SHA-256 of the canonical bytes: the `manifest_digest` a build records. */
export function manifestDigest(manifest: Manifest): Promise<string> {
  return sha256Hex(encodeManifest(manifest));
}

/** What a manifest says beyond its chunks: who built what, and when. */
export interface ManifestIdentity {
  readonly app: string;
  readonly build_id: number;
  readonly commit_sha: string;
  /** Default: now. */
  readonly created_at?: string;
}

/** The parts `buildManifest` puts together, all from one pass of the chunker. */
export interface ManifestContents {
  readonly params: ChunkerParams;
  readonly chunks: readonly ManifestChunk[];
  /** SHA-256 of the whole file, lowercase hex. */
  readonly sha256: string;
}

/** A checked manifest from the chunker's output; throws a ManifestError if anything is off. */
export function buildManifest(identity: ManifestIdentity, contents: ManifestContents): Manifest {
  const chunks = contents.chunks.map(({ digest, size }) => ({ digest, size }));
  return parseManifest({
    version: MANIFEST_VERSION,
    app: identity.app,
    build_id: identity.build_id,
    commit_sha: identity.commit_sha,
    created_at: identity.created_at ?? new Date().toISOString(),
    size: chunks.reduce((sum, chunk) => sum + chunk.size, 0),
    sha256: contents.sha256,
    chunker: contents.params,
    chunks,
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
