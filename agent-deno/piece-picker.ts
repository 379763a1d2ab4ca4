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
 * Peer first, as BitTorrent keeps every connection busy: the peers in the order given (least
 * busy first), and for the first of them (at most `tries`) that holds a chunk still needed,
 * the chunk `pickPiece` would choose among those it holds. Returns the index into `remaining`
 * and the peer, or null when none of those peers holds anything needed (then `pickPiece`
 * alone decides, and the chunk comes from whoever has it or from the relay). Also null while a
 * chunk the tracker asked this agent to seed is left: those come first.
 */
export function pickFromPeers<P>(
  remaining: readonly number[],
  peers: Iterable<P>,
  has: (peer: P, index: number) => boolean,
  o: PickOptions & { tries?: number },
): { at: number; peer: P } | null {
  // A chunk the tracker asked this agent to seed comes first, from the relay.
  if (o.seeded && remaining.some((chunk) => o.seeded!(chunk))) return null;
  let tries = o.tries ?? 3;
  for (const peer of peers) {
    if (tries-- <= 0) break;
    const at = pickAmong(remaining, o, (chunk) => has(peer, chunk));
    if (at >= 0) return { at, peer };
  }
  return null;
}

/** Index into `remaining` (chunk indices not yet done nor in flight) of the one to fetch. */
export function pickPiece(remaining: readonly number[], o: PickOptions): number {
  if (remaining.length === 0) throw new RangeError("nothing to pick from");
  return pickAmong(remaining, o, null);
}

/** pickPiece among the chunks `allowed` lets through; -1 when none does. */
function pickAmong(
  remaining: readonly number[],
  o: PickOptions,
  allowed: ((chunk: number) => boolean) | null,
): number {
  const random = o.random ?? Math.random;
  const score = (chunk: number) =>
    o.seeded?.(chunk) ? 0 : o.holders(chunk) || Number.MAX_SAFE_INTEGER;
  if (o.fetched < (o.randomFirst ?? 4)) {
    const reachable = remaining.flatMap((c, at) =>
      (allowed === null || allowed(c)) && score(c) < Number.MAX_SAFE_INTEGER ? [at] : [],
    );
    if (reachable.length > 0) return reachable[Math.floor(random() * reachable.length)]!;
  }
  let best: number[] = [];
  let fewest = Number.POSITIVE_INFINITY;
  remaining.forEach((chunk, at) => {
    if (allowed !== null && !allowed(chunk)) return;
    const n = score(chunk);
    if (n < fewest) {
      fewest = n;
      best = [at];
    } else if (n === fewest) best.push(at);
  });
  if (best.length === 0) return -1;
  return best[Math.floor(random() * best.length)]!;
}
