/** Inputs for the agent's unit tests (not used by the program). */
import { createHash } from "node:crypto";
import { manifestFromStream } from "../protocol/artifact.ts";
import type { ChunkerParams } from "../protocol/chunker-params.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { signManifest } from "../protocol/manifest-signing.ts";
import { generateSigningKeys, Signer, Verifier } from "../protocol/signing.ts";
import { fillPseudoRandom } from "../protocol/test-support.ts";
import { type PieceRequest, type PieceSource, PieceUnavailable } from "./piece-source.ts";

export const SMALL_CHUNKS: ChunkerParams = {
  algorithm: "fastcdc-2020",
  min_size: 1024,
  avg_size: 4096,
  max_size: 16384,
  normalization: 1,
};

export const keys = await generateSigningKeys();
export const signer = await Signer.fromPrivateKey(keys.privateKey);
export const verifier = await Verifier.fromPublicKeys(keys.publicKey);

export function randomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  fillPseudoRandom(out, seed);
  return out;
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A build of `bytes`: its manifest, the signed response body a relay serves, and its chunks. */
export async function buildOf(app: string, buildId: number, bytes: Uint8Array) {
  const chunks = new Map<string, Uint8Array>();
  const manifest: Manifest = await manifestFromStream(
    (async function* () {
      yield bytes;
    })(),
    { app, build_id: buildId, commit_sha: "c".repeat(40) },
    { params: SMALL_CHUNKS, onChunk: (c) => void chunks.set(c.digest, c.bytes.slice()) },
  );
  const signed = await signManifest(signer, manifest);
  const body = {
    manifest: signed.manifest,
    signature: signed.signature,
    public_key: keys.publicKey,
  };
  return { manifest, body, chunks, digest: sha256(signed.bytes) };
}

/** A piece source over a map of chunks, counting requests; can lie or be down. */
export class MapSource implements PieceSource {
  readonly name = "map";
  readonly requests: string[] = [];
  readonly bad: string[] = [];
  /** Digests answered with wrong bytes this many more times. */
  readonly lies = new Map<string, number>();
  down = false;
  /** Each piece takes this long. */
  delayMs = 0;
  /** Aborts the caller after this many served pieces (a crash mid-download). */
  crashAfter: { count: number; abort: AbortController } | null = null;

  constructor(readonly chunks: Map<string, Uint8Array>) {}

  async fetchPiece(
    piece: PieceRequest,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; from: string }> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    signal.throwIfAborted();
    this.requests.push(piece.digest);
    if (this.crashAfter && this.requests.length > this.crashAfter.count) {
      this.crashAfter.abort.abort(new Error("crash"));
      signal.throwIfAborted();
    }
    if (this.down) throw new PieceUnavailable("down");
    const bytes = this.chunks.get(piece.digest);
    if (!bytes) throw new PieceUnavailable(`no ${piece.digest}`);
    const lies = this.lies.get(piece.digest) ?? 0;
    if (lies > 0) {
      this.lies.set(piece.digest, lies - 1);
      return { bytes: bytes.map((b) => b ^ 0xff), from: "liar" };
    }
    return { bytes, from: "map" };
  }

  reportBad(piece: PieceRequest, from: string): void {
    this.bad.push(`${from}:${piece.digest}`);
  }
}
