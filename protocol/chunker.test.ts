import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Chunk, chunkStream } from "./chunker.ts";
import type { ChunkerParams } from "./chunker-params.ts";
import { toHex } from "./encoding.ts";
import { chunkSizes } from "./fastcdc.ts";
import { createSha256, sha256Hex } from "./hash.ts";
import { fillPseudoRandom, pseudoRandomBytes, streamOf } from "./test-support.ts";

const SMALL: ChunkerParams = {
  algorithm: "fastcdc-2020",
  min_size: 256,
  avg_size: 1024,
  max_size: 4096,
  normalization: 1,
};

async function collect<T>(chunks: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

describe("chunkStream()", () => {
  it("yields contiguous chunks whose bytes and digests reproduce the input", async () => {
    const data = pseudoRandomBytes(200_000, 11);
    const chunks = await collect(
      chunkStream(streamOf(data, [5000]), { params: SMALL, withBytes: true }),
    );
    expect(chunks.map((c) => c.size)).toEqual(chunkSizes(data, SMALL));
    let offset = 0;
    for (const chunk of chunks) {
      expect(chunk.offset).toBe(offset);
      expect(chunk.bytes).toEqual(data.subarray(offset, offset + chunk.size));
      expect(chunk.digest).toBe(await sha256Hex(data.subarray(offset, offset + chunk.size)));
      offset += chunk.size;
    }
    expect(offset).toBe(data.length);
  });

  it("hands out digests only unless asked for bytes", async () => {
    const chunks: Chunk[] = await collect(
      chunkStream(streamOf(pseudoRandomBytes(20_000)), { params: SMALL }),
    );
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks)
      expect(Object.keys(chunk).sort()).toEqual(["digest", "offset", "size"]);
  });

  it("finds the same chunks however the stream splits its reads", async () => {
    const data = pseudoRandomBytes(60_000, 12);
    const expected = await collect(chunkStream(streamOf(data, [60_000]), { params: SMALL }));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 30 }),
        async (reads) => {
          const chunks = await collect(chunkStream(streamOf(data, reads), { params: SMALL }));
          expect(chunks).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("shares most chunks after a few bytes are inserted mid-stream (shift resistance)", async () => {
    const data = pseudoRandomBytes(400_000, 13);
    const edited = new Uint8Array(data.length + 5);
    edited.set(data.subarray(0, 200_000));
    edited.set([1, 2, 3, 4, 5], 200_000);
    edited.set(data.subarray(200_000), 200_005);
    const before = await collect(chunkStream(streamOf(data), { params: SMALL }));
    const after = await collect(chunkStream(streamOf(edited), { params: SMALL }));
    const known = new Set(before.map((c) => c.digest));
    const changed = after.filter((c) => !known.has(c.digest));
    // About 320 chunks; only those around the insertion may differ (2 do).
    expect(before.length).toBeGreaterThan(300);
    expect(changed.length).toBeLessThanOrEqual(3);
    for (const chunk of changed) {
      expect(chunk.offset).toBeGreaterThan(200_000 - 2 * SMALL.max_size);
      expect(chunk.offset).toBeLessThan(200_005 + 2 * SMALL.max_size);
    }
  });

  it("feeds every byte to the hasher, for the whole-file digest", async () => {
    const data = pseudoRandomBytes(50_000, 14);
    const hasher = createSha256();
    await collect(chunkStream(streamOf(data, [333]), { params: SMALL, hasher }));
    expect(toHex(hasher.digest())).toBe(await sha256Hex(data));
  });

  it("reads only about max_size per chunk in flight ahead of the chunks it yields", async () => {
    const piece = 1000;
    let read = 0;
    async function* source() {
      let seed = 5;
      for (let i = 0; i < 2000; i++) {
        const bytes = new Uint8Array(piece);
        seed = fillPseudoRandom(bytes, seed);
        read += piece;
        yield bytes;
      }
    }
    let ahead = 0;
    for await (const chunk of chunkStream(source(), { params: SMALL })) {
      ahead = Math.max(ahead, read - (chunk.offset + chunk.size));
    }
    // When a chunk is yielded: the next one being hashed and the one being cut, each at most
    // max_size, plus one read.
    expect(ahead).toBeLessThanOrEqual(2 * SMALL.max_size + piece);
  });

  it("cancels the stream when the caller stops early", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(pseudoRandomBytes(4096, 15)),
      cancel: () => {
        cancelled = true;
      },
    });
    for await (const _ of chunkStream(stream, { params: SMALL })) break;
    expect(cancelled).toBe(true);
  });

  it("yields nothing for an empty stream and refuses pieces that are not bytes", async () => {
    expect(await collect(chunkStream(streamOf(new Uint8Array(0))))).toEqual([]);
    async function* strings() {
      yield "text" as unknown as Uint8Array;
    }
    await expect(collect(chunkStream(strings()))).rejects.toThrow(TypeError);
  });

  it("cuts a known pseudo-random stream at the same points as ever (default 1/4/16 MiB)", async () => {
    // A regression guard: changing these cut points would stop new builds sharing chunks with
    // builds already stored. Input: 64 MiB of xorshift32 from seed 7 (test-support.ts).
    const data = new Uint8Array(64 * 1024 * 1024);
    fillPseudoRandom(data, 7);
    const chunks = await collect(chunkStream(streamOf(data, [1 << 20])));
    expect(chunks.map((c) => c.size)).toEqual(GOLDEN_SIZES);
    expect(chunks[0]!.digest).toBe(GOLDEN_FIRST_DIGEST);
  });
});

// Computed once, and checked then against a plain 64-bit BigInt transcription of the crate's
// algorithm (the reference in fastcdc.test.ts) on the same input.
const GOLDEN_SIZES = [
  3458905, 2817451, 4154734, 1371640, 3753950, 7701892, 4195768, 5117232, 9248007, 8906394, 5910733,
  6638182, 3361200, 472776,
];
const GOLDEN_FIRST_DIGEST = "c3a4540c001577fa120b9decedfa49df1d6ac457d322ad3964118ecaa902c7bc";
