import { assertChunkerParams, type ChunkerParams, maskBits } from "./chunker-params.ts";
import { GEAR_HI, GEAR_LO, MASKS } from "./fastcdc-tables.ts";

/**
 * FastCDC 2020 cut points over input that arrives in pieces: `push` each piece in order, then
 * call `next` until it returns `undefined`. Cut points equal the Rust `fastcdc` crate's (v2020,
 * `FastCDC::with_level`) whatever the sizes of the pieces.
 *
 * The crate's "roll two bytes at a time" hash is, byte for byte, the plain 64-bit gear hash
 * h = (h << 1) + GEAR[byte] tested against a mask after every byte. A position whose hash
 * matches the mask ends the chunk just before that byte (the crate's convention). Cut masks
 * have bits in both 32-bit halves and the low half of h depends only on the low halves of the
 * table, so the hot loop keeps only the low half; the rare position (1 in 2^12 or fewer) whose
 * low half matches gets its high half recomputed from the last 64 bytes, the only bytes a
 * 64-bit gear hash still depends on. That makes the loop as cheap as a 32-bit gear hash.
 *
 * Memory: the finder holds views of the pushed pieces until a chunk is cut, at most
 * `max_size` plus one piece; it copies only to join a chunk spread over several pieces.
 */
export class CutFinder {
  readonly #min: number;
  readonly #max: number;
  /** First position hashed: the crate skips the sub-minimum bytes in pairs. */
  readonly #start: number;
  /** Positions before this use the harder mask, the rest the easier one. */
  readonly #switchAt: number;
  readonly #beforeHi: number;
  readonly #beforeLo: number;
  readonly #afterHi: number;
  readonly #afterLo: number;

  /** Views of the current chunk's bytes, from chunk position 0, in order. */
  #pieces: Uint8Array[] = [];
  #buffered = 0;
  /** Next chunk position to hash and the low half of the hash of the bytes before it. */
  #pos: number;
  #lo = 0;
  /** The piece holding #pos and the chunk position where that piece starts. */
  #piece = 0;
  #pieceStart = 0;

  constructor(params: ChunkerParams) {
    assertChunkerParams(params);
    this.#min = params.min_size;
    this.#max = params.max_size;
    this.#start = even(params.min_size);
    this.#switchAt = even(params.avg_size);
    const bits = maskBits(params);
    [this.#beforeHi, this.#beforeLo] = MASKS.get(bits.before)!;
    [this.#afterHi, this.#afterLo] = MASKS.get(bits.after)!;
    this.#pos = this.#start;
  }

  /** Bytes pushed and not yet returned by `next`. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Appends the next piece of input. The finder keeps a view: do not modify `bytes` later. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#pieces.push(bytes);
    this.#buffered += bytes.length;
  }

  /**
   * The bytes of the next chunk, or `undefined` when more input is needed (or, once `ended`,
   * when nothing is left). `ended` says no more input will be pushed. The result is a view of a
   * pushed piece when the chunk lies inside one, else a new array.
   */
  next(ended: boolean): Uint8Array | undefined {
    const have = this.#buffered;
    if (have === 0) return undefined;
    if (ended && have <= this.#min) return this.#take(have);
    const limit = Math.min(have, this.#max);
    // Without the end in sight an odd last byte may yet be the crate's unhashed tail, so only
    // whole pairs are scanned; `limit` is then final once `have` reaches max or the input ends.
    const cut = this.#scan(even(limit));
    if (cut >= 0) return this.#take(cut);
    if (have >= this.#max) return this.#take(this.#max);
    if (ended) return this.#take(have);
    return undefined;
  }

  /** Hashes positions #pos..end-1; returns the first cut position, or -1. */
  #scan(end: number): number {
    while (this.#pos < end) {
      let piece = this.#pieces[this.#piece]!;
      while (this.#pos >= this.#pieceStart + piece.length) {
        this.#pieceStart += piece.length;
        this.#piece++;
        piece = this.#pieces[this.#piece]!;
      }
      const offset = this.#pieceStart;
      const stop = Math.min(end, offset + piece.length);
      const before = this.#pos < this.#switchAt;
      const to = before ? Math.min(stop, this.#switchAt) : stop;
      const maskLo = before ? this.#beforeLo : this.#afterLo;
      const hit = this.#scanLow(piece, this.#pos - offset, to - offset, maskLo);
      if (hit < 0) {
        this.#pos = to;
        continue;
      }
      const position = offset + hit;
      this.#pos = position + 1;
      const maskHi = before ? this.#beforeHi : this.#afterHi;
      if ((this.#highHalf(position) & maskHi) === 0) return position;
    }
    return -1;
  }

  /** The hot loop: low half of the gear hash over data[from, to); index of a low-half match. */
  #scanLow(data: Uint8Array, from: number, to: number, maskLo: number): number {
    let h = this.#lo;
    for (let i = from; i < to; i++) {
      h = ((h << 1) + GEAR_LO[data[i]!]!) | 0;
      if ((h & maskLo) === 0) {
        this.#lo = h;
        return i;
      }
    }
    this.#lo = h;
    return -1;
  }

  /** High half of the 64-bit gear hash of the chunk's bytes #start..position. */
  #highHalf(position: number): number {
    const first = Math.max(this.#start, position - 63);
    // Walk back to the piece holding `first` (at most 64 bytes back).
    let index = this.#piece;
    let pieceStart = this.#pieceStart;
    while (first < pieceStart) {
      index--;
      pieceStart -= this.#pieces[index]!.length;
    }
    let hi = 0;
    let lo = 0;
    let piece = this.#pieces[index]!;
    for (let q = first; q <= position; q++) {
      if (q - pieceStart >= piece.length) {
        pieceStart += piece.length;
        index++;
        piece = this.#pieces[index]!;
      }
      const byte = piece[q - pieceStart]!;
      const low = ((lo << 1) >>> 0) + (GEAR_LO[byte]! >>> 0);
      hi = (((hi << 1) | (lo >>> 31)) + GEAR_HI[byte]! + (low > 0xffffffff ? 1 : 0)) | 0;
      lo = low | 0;
    }
    return hi;
  }

  /** Detaches the first `size` bytes as one array and restarts scanning after them. */
  #take(size: number): Uint8Array {
    const first = this.#pieces[0]!;
    let chunk: Uint8Array;
    let used = 0;
    if (first.length >= size) {
      chunk = first.subarray(0, size);
      if (first.length === size) used = 1;
      else this.#pieces[0] = first.subarray(size);
    } else {
      chunk = new Uint8Array(size);
      let filled = 0;
      while (filled < size) {
        const piece = this.#pieces[used]!;
        const part = Math.min(piece.length, size - filled);
        chunk.set(part === piece.length ? piece : piece.subarray(0, part), filled);
        filled += part;
        if (part === piece.length) used++;
        else this.#pieces[used] = piece.subarray(part);
      }
    }
    if (used > 0) this.#pieces = this.#pieces.slice(used);
    this.#buffered -= size;
    this.#pos = this.#start;
    this.#lo = 0;
    this.#piece = 0;
    this.#pieceStart = 0;
    return chunk;
  }
}

/** Chunk sizes of `bytes` in order (a convenience for data already in memory). */
export function chunkSizes(bytes: Uint8Array, params: ChunkerParams): number[] {
  const finder = new CutFinder(params);
  finder.push(bytes);
  const sizes: number[] = [];
  for (let chunk = finder.next(true); chunk !== undefined; chunk = finder.next(true)) {
    sizes.push(chunk.length);
  }
  return sizes;
}

function even(n: number): number {
  return n - (n % 2);
}
