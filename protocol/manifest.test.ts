import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { manifestFromStream } from "./artifact.ts";
import type { ChunkerParams } from "./chunker-params.ts";
import { sha256Hex } from "./hash.ts";
import {
  buildManifest,
  checkManifest,
  decodeManifest,
  encodeManifest,
  MAX_MANIFEST_CHUNKS,
  type Manifest,
  ManifestError,
  manifestDigest,
  parseManifest,
} from "./manifest.ts";
import { pseudoRandomBytes, streamOf } from "./test-support.ts";

const PARAMS: ChunkerParams = {
  algorithm: "fastcdc-2020",
  min_size: 64,
  avg_size: 256,
  max_size: 1024,
  normalization: 1,
};
const D1 = "a".repeat(64);
const D2 = "b".repeat(64);

const valid = (): Manifest => ({
  version: 1,
  app: "web-api",
  build_id: 42,
  commit_sha: "0123456789abcdef0123456789abcdef01234567",
  created_at: "2026-11-26T12:00:00.000Z",
  size: 1100,
  sha256: "c".repeat(64),
  chunker: PARAMS,
  chunks: [
    { digest: D1, size: 1000 },
    { digest: D2, size: 100 },
  ],
});

function issuesOf(value: unknown): string {
  const check = checkManifest(value);
  return check.ok ? "" : check.issues.join("\n");
}

describe("manifest", () => {
  it("checkManifest() accepts a well-formed manifest", () => {
    expect(checkManifest(valid())).toEqual({ ok: true, manifest: valid() });
  });

  it("checkManifest() refuses unknown fields, at the top and inside", () => {
    expect(issuesOf({ ...valid(), extra: 1 })).toMatch(/extra/);
    expect(issuesOf({ ...valid(), chunker: { ...PARAMS, level: 2 } })).toMatch(/level/);
    expect(issuesOf({ ...valid(), chunks: [{ digest: D1, size: 1100, x: 0 }] })).toMatch(/"x"/);
  });

  it("checkManifest() refuses malformed fields", () => {
    expect(issuesOf({ ...valid(), version: 2 })).toMatch(/^version/);
    expect(issuesOf({ ...valid(), app: "Web API" })).toMatch(/^app/);
    expect(issuesOf({ ...valid(), build_id: 0 })).toMatch(/^build_id/);
    expect(issuesOf({ ...valid(), commit_sha: "abc" })).toMatch(/^commit_sha/);
    expect(issuesOf({ ...valid(), created_at: "2026-11-26T12:00:00+01:00" })).toMatch(
      /^created_at/,
    );
    expect(issuesOf({ ...valid(), sha256: D1.toUpperCase() })).toMatch(/^sha256/);
    expect(issuesOf({ ...valid(), size: -1 })).toMatch(/^size/);
    expect(issuesOf({ ...valid(), chunks: [{ digest: "xyz", size: 1100 }] })).toMatch(
      /^chunks\.0\.digest/,
    );
    expect(issuesOf({ ...valid(), chunker: { ...PARAMS, max_size: 32 * 1024 * 1024 } })).toMatch(
      /max_size/,
    );
  });

  it("checkManifest() refuses chunk sizes that do not add up or break the chunker's bounds", () => {
    expect(issuesOf({ ...valid(), size: 1101 })).toMatch(/chunk sizes add up to 1100/);
    const tooBig = {
      ...valid(),
      size: 1125,
      chunks: [
        { digest: D1, size: 1025 },
        { digest: D2, size: 100 },
      ],
    };
    expect(issuesOf(tooBig)).toMatch(/chunks\.0\.size: exceeds chunker max_size/);
    const tooSmall = {
      ...valid(),
      size: 130,
      chunks: [
        { digest: D1, size: 30 },
        { digest: D2, size: 100 },
      ],
    };
    expect(issuesOf(tooSmall)).toMatch(/chunks\.0\.size: below chunker min_size/);
    // The last chunk may be short; an empty file has no chunks.
    expect(
      issuesOf({
        ...valid(),
        size: 1001,
        chunks: [
          { digest: D1, size: 1000 },
          { digest: D2, size: 1 },
        ],
      }),
    ).toBe("");
    expect(issuesOf({ ...valid(), size: 0, chunks: [] })).toBe("");
  });

  it(`checkManifest() refuses more than ${MAX_MANIFEST_CHUNKS} chunks`, () => {
    const chunks = Array.from({ length: MAX_MANIFEST_CHUNKS + 1 }, () => ({
      digest: D1,
      size: 100,
    }));
    expect(issuesOf({ ...valid(), size: 100 * chunks.length, chunks })).toMatch(
      /at most 100000 chunks/,
    );
  });

  it("checkManifest() never throws, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        expect(checkManifest(value).ok).toBe(false);
      }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(valid())), fc.anything(), (key, value) => {
        checkManifest({ ...valid(), [key]: value });
      }),
    );
  });

  it("parseManifest() throws a ManifestError listing every issue", () => {
    let error: unknown;
    try {
      parseManifest({ ...valid(), app: "", extra: true });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).issues).toHaveLength(2);
  });

  it("encodeManifest() is canonical: fixed key order, no whitespace, whatever the input's order", () => {
    const m = valid();
    const reverseKeys = (o: object) => Object.fromEntries(Object.entries(o).reverse());
    const reversed = {
      ...reverseKeys(m),
      chunker: reverseKeys(m.chunker),
      chunks: m.chunks.map(reverseKeys),
    } as unknown as Manifest;
    expect(Object.keys(reversed)[0]).toBe("chunks");
    const text = new TextDecoder().decode(encodeManifest(reversed));
    expect(text).toBe(new TextDecoder().decode(encodeManifest(m)));
    expect(text).toBe(
      '{"version":1,"app":"web-api","build_id":42,"commit_sha":"0123456789abcdef0123456789abcdef01234567",' +
        '"created_at":"2026-11-26T12:00:00.000Z","size":1100,"sha256":"' +
        "c".repeat(64) +
        '","chunker":{"algorithm":"fastcdc-2020","min_size":64,"avg_size":256,"max_size":1024,' +
        `"normalization":1},"chunks":[{"digest":"${D1}","size":1000},{"digest":"${D2}","size":100}]}`,
    );
  });

  it("decodeManifest() round-trips and refuses non-canonical or invalid bytes", () => {
    const bytes = encodeManifest(valid());
    expect(decodeManifest(bytes)).toEqual(valid());
    const pretty = new TextEncoder().encode(JSON.stringify(valid(), null, 2));
    expect(() => decodeManifest(pretty)).toThrow(/canonical/);
    expect(() => decodeManifest(new TextEncoder().encode("{"))).toThrow(/JSON/);
    expect(() => decodeManifest(Uint8Array.of(0xff))).toThrow(ManifestError);
    expect(() => decodeManifest(new TextEncoder().encode("{}"))).toThrow(ManifestError);
  });

  it("manifestDigest() is the SHA-256 of the canonical bytes", async () => {
    expect(await manifestDigest(valid())).toBe(await sha256Hex(encodeManifest(valid())));
  });

  it("buildManifest() sums the chunks and checks the result", () => {
    const m = buildManifest(
      {
        app: "web-api",
        build_id: 42,
        commit_sha: valid().commit_sha,
        created_at: valid().created_at,
      },
      { params: PARAMS, chunks: valid().chunks, sha256: valid().sha256 },
    );
    expect(m).toEqual(valid());
    expect(() =>
      buildManifest(
        { app: "web-api", build_id: 1, commit_sha: "nope" },
        { params: PARAMS, chunks: [], sha256: D1 },
      ),
    ).toThrow(ManifestError);
  });

  it("manifestFromStream() chunks, hashes and describes an artifact in one pass", async () => {
    const data = pseudoRandomBytes(100_000, 21);
    const uploaded: Uint8Array[] = [];
    const m = await manifestFromStream(
      streamOf(data, [3000]),
      { app: "web-api", build_id: 7, commit_sha: valid().commit_sha },
      { params: PARAMS, onChunk: (chunk) => void uploaded.push(chunk.bytes) },
    );
    expect(m.size).toBe(data.length);
    expect(m.sha256).toBe(await sha256Hex(data));
    expect(m.chunks.length).toBe(uploaded.length);
    expect(m.chunks.map((c) => c.size)).toEqual(uploaded.map((b) => b.length));
    expect(Date.parse(m.created_at)).toBeGreaterThan(Date.now() - 60_000);
    for (const [i, chunk] of m.chunks.entries())
      expect(chunk.digest).toBe(await sha256Hex(uploaded[i]!));
  });
});
