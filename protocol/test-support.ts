// Deterministic inputs for tests and benchmarks (not part of the public API).

/** `length` pseudo-random bytes from `seed` (xorshift32): the same bytes on every runtime. */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  fillPseudoRandom(out, seed);
  return out;
}

/** Fills `out` with xorshift32 output from `seed` (nonzero); returns the next seed. */
export function fillPseudoRandom(out: Uint8Array, seed: number): number {
  let x = seed | 0 || 1;
  const words = out.length >>> 2;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view.setUint32(i * 4, x, true);
  }
  for (let i = words * 4; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return x;
}

/** A stream of `bytes` cut into pieces of the given sizes (cycled); no piece is empty. */
export function streamOf(
  bytes: Uint8Array,
  pieceSizes: readonly number[] = [65536],
): ReadableStream<Uint8Array> {
  let offset = 0;
  let turn = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const size = Math.max(1, pieceSizes[turn++ % pieceSizes.length] ?? 1);
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

/** mulberry32: a small seeded generator of numbers in [0, 1), so a run can be repeated exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
