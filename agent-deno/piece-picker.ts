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

/** Index into `remaining` (chunk indices not yet done nor in flight) of the one to fetch. */
export function pickPiece(remaining: readonly number[], o: PickOptions): number {
  if (remaining.length === 0) throw new RangeError("nothing to pick from");
  const random = o.random ?? Math.random;
  const score = (chunk: number) =>
    o.seeded?.(chunk) ? 0 : o.holders(chunk) || Number.MAX_SAFE_INTEGER;
  if (o.fetched < (o.randomFirst ?? 4)) {
    const reachable = remaining.flatMap((c, at) =>
      score(c) < Number.MAX_SAFE_INTEGER ? [at] : [],
    );
    if (reachable.length > 0) return reachable[Math.floor(random() * reachable.length)]!;
  }
  let best: number[] = [];
  let fewest = Number.POSITIVE_INFINITY;
  remaining.forEach((chunk, at) => {
    const n = score(chunk);
    if (n < fewest) {
      fewest = n;
      best = [at];
    } else if (n === fewest) best.push(at);
  });
  return best[Math.floor(random() * best.length)]!;
}
