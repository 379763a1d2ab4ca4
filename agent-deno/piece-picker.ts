/**
 * Which chunk to fetch next (DESIGN section 8): the first few at random (so that a new agent
 * soon holds something to trade, and agents that start together do not all ask for the same
 * chunk), then the chunks the tracker asked this agent to seed, then the rarest among those
 * some peer in reach holds, ties broken at random. Only
 * when no peer holds any chunk still needed is one picked at random among the rest: it comes
 * from the relay (the source of last resort), and random so that agents seed different ones.
 */
export interface PickOptions {
  /** Chunks fetched so far in this download. */
  fetched: number;
  /** How many peers hold chunk i. */
  holders: (index: number) => number;
  /** Chunks the tracker asked this agent to seed from the relay: fetched first. */
  seeded?: (index: number) => boolean;
  /** Random picks before rarest first. Default 4. */
  randomFirst?: number;
  random?: () => number;
}

/**
 * `remaining` as a bitfield (bit i set: chunk i is still needed) with each chunk's index into
 * `remaining`. A caller that keeps these as it goes (the simulation) passes them; else
 * pickFromPeers builds them from `remaining`.
 */
export interface Lacking {
  bits: Uint8Array;
  /** chunk → its index into `remaining` (read only for chunks whose bit is set). */
  at: ArrayLike<number>;
}

/**
 * Peer first, as BitTorrent keeps every connection busy: the peers in the order given (least
 * busy first), and for the first of them (at most `tries`) that holds a chunk still needed,
 * the chunk `pickPiece` would choose among those it holds. `holdings` is a peer's `have`
 * bitfield (bit i: it holds chunk i). Returns the index into `remaining` and the peer, or null
 * when none of those peers holds anything needed (then `pickPiece` alone decides, and the
 * chunk comes from whoever has it or from the relay). Also null while a chunk the tracker
 * asked this agent to seed is left: those come first.
 *
 * A peer's candidates are found a byte at a time (its holdings AND what is lacking), not by
 * asking of every remaining chunk whether the peer has it: a peer that holds nothing needed
 * (the least busy often do) costs a few dozen byte operations, not a pass over `remaining`.
 */
export function pickFromPeers<P>(
  remaining: readonly number[],
  peers: Iterable<P>,
  holdings: (peer: P) => Uint8Array | undefined,
  o: PickOptions & { tries?: number; lacking?: Lacking },
): { at: number; peer: P } | null {
  // A chunk the tracker asked this agent to seed comes first, from the relay.
  const seeded = o.seeded;
  if (seeded && remaining.some((chunk) => seeded(chunk))) return null;
  if (remaining.length === 0) return null;
  const lacking = o.lacking ?? lackingOf(remaining);
  let tries = o.tries ?? 3;
  for (const peer of peers) {
    if (tries-- <= 0) break;
    const held = holdings(peer);
    if (held === undefined) continue;
    const chunk = pickHeld(held, lacking.bits, o);
    if (chunk >= 0) return { at: lacking.at[chunk]!, peer };
  }
  return null;
}

/** A chunk's score: 0 to seed, else how many peers hold it, NOBODY for none. */
const NOBODY = Number.MAX_SAFE_INTEGER;
const scoreOf = (o: PickOptions, chunk: number): number =>
  o.seeded?.(chunk) ? 0 : o.holders(chunk) || NOBODY;

/**
 * The candidates of one pick as they are scored: the least score with its ties, and what some
 * peer holds (for the first random picks). One instance, reused: a pick runs for every chunk
 * fetched, and this allocates only when it outgrows its scratch space.
 */
class Choice {
  #tied = new Int32Array(256);
  #reachable = new Int32Array(256);
  #fewest = Number.POSITIVE_INFINITY;
  #ties = 0;
  #reached = 0;
  #early = false;

  /** A new pick of at most `most` candidates, by the options of `o`. */
  start(most: number, o: PickOptions): void {
    if (this.#tied.length < most) {
      this.#tied = new Int32Array(most * 2);
      this.#reachable = new Int32Array(most * 2);
    }
    this.#fewest = Number.POSITIVE_INFINITY;
    this.#ties = 0;
    this.#reached = 0;
    this.#early = o.fetched < (o.randomFirst ?? 4);
  }

  add(item: number, score: number): void {
    if (this.#early && score < NOBODY) this.#reachable[this.#reached++] = item;
    if (score < this.#fewest) {
      this.#fewest = score;
      this.#ties = 0;
      this.#tied[this.#ties++] = item;
    } else if (score === this.#fewest) this.#tied[this.#ties++] = item;
  }

  /** The first few at random among the reachable (if any), then the rarest; -1: none. */
  pick(o: PickOptions): number {
    if (this.#ties === 0) return -1;
    const random = o.random ?? Math.random;
    if (this.#reached > 0) return this.#reachable[Math.floor(random() * this.#reached)]!;
    return this.#tied[Math.floor(random() * this.#ties)]!;
  }
}

const choice = new Choice();
let built = { bits: new Uint8Array(32), at: new Int32Array(256) };

function lackingOf(remaining: readonly number[]): Lacking {
  let max = 0;
  for (const chunk of remaining) max = Math.max(max, chunk);
  if (built.at.length <= max) {
    const room = 2 * (max + 1);
    built = { bits: new Uint8Array((room >> 3) + 1), at: new Int32Array(room) };
  }
  const { bits, at } = built;
  bits.fill(0, 0, (max >> 3) + 1);
  for (let i = 0; i < remaining.length; i++) {
    const chunk = remaining[i]!;
    bits[chunk >> 3]! |= 1 << (chunk & 7);
    at[chunk] = i;
  }
  return { bits: bits.subarray(0, (max >> 3) + 1), at };
}

/** The chunk pickPiece would choose among those both `held` and `lacking`; -1: none. */
function pickHeld(held: Uint8Array, lacking: Uint8Array, o: PickOptions): number {
  const bytes = Math.min(held.length, lacking.length);
  choice.start(bytes * 8, o);
  for (let byte = 0; byte < bytes; byte++) {
    let both = held[byte]! & lacking[byte]!;
    while (both !== 0) {
      const bit = 31 - Math.clz32(both & -both);
      both &= both - 1;
      const chunk = byte * 8 + bit;
      choice.add(chunk, scoreOf(o, chunk));
    }
  }
  return choice.pick(o);
}

/** Index into `remaining` (chunk indices not yet done nor in flight) of the one to fetch. */
export function pickPiece(remaining: readonly number[], o: PickOptions): number {
  if (remaining.length === 0) throw new RangeError("nothing to pick from");
  choice.start(remaining.length, o);
  for (let at = 0; at < remaining.length; at++) choice.add(at, scoreOf(o, remaining[at]!));
  return choice.pick(o);
}
