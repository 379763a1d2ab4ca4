import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ChunkerParams, maskBits } from "./chunker-params.ts";
import { CutFinder, chunkSizes } from "./fastcdc.ts";
import { GEAR_HI, GEAR_LO, MASKS } from "./fastcdc-tables.ts";
import { pseudoRandomBytes } from "./test-support.ts";

const M64 = (1n << 64n) - 1n;
const GEAR = Array.from(
  { length: 256 },
  (_, i) => (BigInt(GEAR_HI[i]! >>> 0) << 32n) | BigInt(GEAR_LO[i]! >>> 0),
);
const GEAR_LS = GEAR.map((g) => (g << 1n) & M64);
const mask64 = (bits: number): bigint => {
  const [hi, lo] = MASKS.get(bits)!;
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
};

/**
 * The crate's v2020 `cut` written out plainly on 64-bit BigInts, two bytes per step: the
 * reference the fast 32-bit CutFinder must agree with. Returns [hash, chunk length].
 */
function referenceCut(src: Uint8Array, from: number, p: ChunkerParams): [bigint, number] {
  let remaining = src.length - from;
  if (remaining <= p.min_size) return [0n, remaining];
  let center = p.avg_size;
  if (remaining > p.max_size) remaining = p.max_size;
  else if (remaining < center) center = remaining;
  const bits = maskBits(p);
  const maskS = mask64(bits.before);
  const maskL = mask64(bits.after);
  let index = Math.floor(p.min_size / 2);
  let hash = 0n;
  const step = (mask: bigint): [bigint, number] | undefined => {
    const a = index * 2;
    hash = ((hash << 2n) + GEAR_LS[src[from + a]!]!) & M64;
    if ((hash & (mask << 1n)) === 0n) return [hash, a];
    hash = (hash + GEAR[src[from + a + 1]!]!) & M64;
    if ((hash & mask) === 0n) return [hash, a + 1];
    index++;
    return undefined;
  };
  while (index < Math.floor(center / 2)) {
    const hit = step(maskS);
    if (hit) return hit;
  }
  while (index < Math.floor(remaining / 2)) {
    const hit = step(maskL);
    if (hit) return hit;
  }
  return [hash, remaining];
}

function referenceSizes(src: Uint8Array, p: ChunkerParams): number[] {
  const sizes: number[] = [];
  for (let at = 0; at < src.length; ) {
    const [, size] = referenceCut(src, at, p);
    sizes.push(size);
    at += size;
  }
  return sizes;
}

const params = (
  min_size: number,
  avg_size: number,
  max_size: number,
  normalization: 0 | 1 | 2 | 3 = 1,
): ChunkerParams => ({ algorithm: "fastcdc-2020", min_size, avg_size, max_size, normalization });

const SMALL = params(64, 256, 1024);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe("CutFinder", () => {
  it("matches the crate's published all-zeros vector (64/256/1024: max-size chunks, known hash)", () => {
    const zeros = new Uint8Array(10240);
    for (let at = 0; at < 10240; at += 1024) {
      expect(referenceCut(zeros, at, SMALL)).toEqual([14169102344523991076n, 1024]);
    }
    expect(chunkSizes(zeros, SMALL)).toEqual(new Array(10).fill(1024));
  });

  it.each([
    params(64, 256, 1024, 0),
    params(64, 256, 1024, 1),
    params(64, 256, 1024, 2),
    params(64, 256, 1024, 3),
    params(65, 300, 1031, 1),
    params(1024, 4096, 16384, 1),
    params(4096, 16384, 65535, 1),
    params(1024, 1024, 1024, 1),
  ])("cuts where the 64-bit reference cuts (%o)", (p) => {
    const data = pseudoRandomBytes(300_000, p.min_size * 7 + p.normalization);
    expect(chunkSizes(data, p)).toEqual(referenceSizes(data, p));
  });

  it("cuts where the reference cuts on low-entropy input (runs, text-like bytes)", () => {
    const data = pseudoRandomBytes(200_000, 5).map((b, i) => (i % 5000 < 2500 ? b & 3 : b % 40));
    expect(chunkSizes(data, SMALL)).toEqual(referenceSizes(data, SMALL));
  });

  it("keeps every chunk within [min, max] except a short last one", () => {
    const p = params(1000, 4000, 12000, 1);
    const sizes = chunkSizes(pseudoRandomBytes(2_000_000, 9), p);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2_000_000);
    for (const size of sizes.slice(0, -1)) {
      expect(size).toBeGreaterThanOrEqual(1000);
      expect(size).toBeLessThanOrEqual(12000);
    }
    // Normalized chunking keeps the mean near avg_size.
    const mean = 2_000_000 / sizes.length;
    expect(mean).toBeGreaterThan(3000);
    expect(mean).toBeLessThan(6000);
  });

  it("finds the same cut points however the input is split into pieces", () => {
    const data = pseudoRandomBytes(40_000, 3);
    const expected = chunkSizes(data, SMALL);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 40 }),
        (cuts) => {
          const finder = new CutFinder(SMALL);
          const sizes: number[] = [];
          const joined = new Uint8Array(data.length);
          let at = 0;
          for (let turn = 0; at < data.length; turn++) {
            const size = cuts[turn % cuts.length]!;
            finder.push(data.subarray(at, at + size));
            at += size;
            for (let c = finder.next(false); c; c = finder.next(false)) {
              joined.set(
                c,
                sizes.reduce((a, b) => a + b, 0),
              );
              sizes.push(c.length);
            }
          }
          for (let c = finder.next(true); c; c = finder.next(true)) {
            joined.set(
              c,
              sizes.reduce((a, b) => a + b, 0),
            );
            sizes.push(c.length);
          }
          expect(sizes).toEqual(expected);
          expect(sameBytes(joined, data)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("returns nothing for empty input and one short chunk for input under min_size", () => {
    expect(chunkSizes(new Uint8Array(0), SMALL)).toEqual([]);
    expect(chunkSizes(new Uint8Array(50), SMALL)).toEqual([50]);
    const finder = new CutFinder(SMALL);
    finder.push(new Uint8Array(50));
    expect(finder.next(false)).toBeUndefined();
    expect(finder.buffered).toBe(50);
  });

  it("rejects parameters outside the crate's ranges", () => {
    expect(() => new CutFinder(params(63, 256, 1024))).toThrow(RangeError);
    expect(() => new CutFinder(params(64, 256, 16 * 1024 * 1024 + 1))).toThrow(RangeError);
    expect(() => new CutFinder(params(512, 256, 1024))).toThrow(/min_size <= avg_size/);
  });
});
