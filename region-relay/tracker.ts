/**
 * The tracker (DESIGN section 8): which connected agent holds which chunks of which build,
 * from their `have` reports, and for each agent a bounded random set of peers, those holding
 * chunks it lacks first. An agent that finished stays listed (a seeder) while it is connected.
 * Each agent gets a random peer key for this relay session; tickets to reach a peer are HMACs
 * under that peer's key (protocol/peer-tracker.ts).
 */

import { toBase64 } from "../protocol/encoding.ts";
import { type PeersMessage, peerTicket } from "../protocol/peer-tracker.ts";

export interface TrackerOptions {
  /** Where a machine's peers reach it (its hello's peer_url), or null when it serves none. */
  peerUrl: (machineId: string) => string | null;
  /** Most peers handed out at once. Default 12. */
  maxPeers?: number;
  /**
   * Holders looked at per `peers` answer: a random sample when a build has more. Default 96
   * (8 × maxPeers). Ranking every holder made an answer cost O(holders × chunks): at 2,500
   * agents on a relay, each reporting twice a second, that alone is more CPU than a relay has
   * (bench/simulate found it); a random sample keeps it bounded and still finds useful peers.
   */
  sample?: number;
  /**
   * Chunks assigned to one agent to seed at once. Default 2: what an agent fetches from the
   * relay at once (its seed slots, half its default download concurrency of 4). More sit
   * assigned but unfetched while others wait for them (bench/simulate, one region of 10,000:
   * p99.9 1.40 × T0 with 4, 1.17 with 2).
   */
  maxSeeds?: number;
  /** An assignment not fulfilled within this goes to someone else. Default 10 s. */
  seedTtlMs?: number;
  random?: () => number;
  now?: () => number;
}

interface Holding {
  chunks: number;
  bits: Uint8Array;
}

/**
 * The holding with the bits past its last chunk cleared: a report may set them, and they must
 * not count once a later report of more chunks grows the counts.
 */
function withoutPadding(h: Holding): Holding {
  const bytes = Math.ceil(h.chunks / 8);
  const keep = (1 << (h.chunks & 7)) - 1; // of the last byte, when chunks is not a multiple of 8
  const padded = keep !== 0 && bytes <= h.bits.length && (h.bits[bytes - 1]! & ~keep) !== 0;
  if (h.bits.length <= bytes && !padded) return h;
  const bits = h.bits.slice(0, bytes);
  if (keep !== 0 && bytes > 0) bits[bytes - 1]! &= keep;
  return { chunks: h.chunks, bits };
}

/** Who holds what of one build, with a per-chunk count of trusted holders. */
class Swarm {
  readonly holdings = new Map<string, Holding>();
  /** The machines of `holdings`, for sampling at random in O(1). */
  readonly ids: string[] = [];
  readonly #at = new Map<string, number>();
  /** Trusted holders per chunk. */
  counts = new Uint32Array(0);
  /** Chunks of `counts` no trusted holder holds: when 0 there is nothing left to seed. */
  unheld = 0;
  /**
   * Chunks nobody holds, each assigned to one machine to fetch from the relay, until when; in
   * the order assigned, so the expired ones are at the front. A chunk leaves when someone
   * comes to hold it, when its time runs out, or when its machine leaves.
   */
  readonly seeding = new Map<number, { machineId: string; until: number }>();
  /** machine → the chunks of `seeding` assigned to it. */
  readonly seedsOf = new Map<string, Set<number>>();

  seed(chunk: number, machineId: string, until: number): void {
    this.seeding.set(chunk, { machineId, until });
    let mine = this.seedsOf.get(machineId);
    if (!mine) {
      mine = new Set();
      this.seedsOf.set(machineId, mine);
    }
    mine.add(chunk);
  }

  unseed(chunk: number): void {
    const s = this.seeding.get(chunk);
    if (!s) return;
    this.seeding.delete(chunk);
    const mine = this.seedsOf.get(s.machineId)!;
    mine.delete(chunk);
    if (mine.size === 0) this.seedsOf.delete(s.machineId);
  }

  /** Drops the assignments whose time ran out (the oldest first, in O(expired)). */
  expireSeeds(now: number): void {
    for (const [chunk, s] of this.seeding) {
      if (s.until >= now) break;
      this.unseed(chunk);
    }
  }

  set(machineId: string, given: Holding, trusted: boolean): void {
    const holding = withoutPadding(given);
    const old = this.holdings.get(machineId);
    if (!old) {
      this.#at.set(machineId, this.ids.length);
      this.ids.push(machineId);
    }
    this.holdings.set(machineId, holding);
    if (holding.chunks > this.counts.length) {
      const grown = new Uint32Array(holding.chunks);
      grown.set(this.counts);
      this.unheld += holding.chunks - this.counts.length;
      this.counts = grown;
    }
    // A report usually adds a few chunks to the last one: count only the bytes that changed
    // (at 10,000 agents reporting twice a second, recounting whole bitfields is most of it).
    if (trusted) this.recount(old?.bits, holding.bits);
  }

  delete(machineId: string, trusted: boolean): void {
    const old = this.holdings.get(machineId);
    if (!old) return;
    if (trusted) this.recount(old.bits, undefined);
    for (const chunk of this.seedsOf.get(machineId) ?? []) this.unseed(chunk);
    this.holdings.delete(machineId);
    const at = this.#at.get(machineId)!;
    const last = this.ids.pop()!;
    if (last !== machineId) {
      this.ids[at] = last;
      this.#at.set(last, at);
    }
    this.#at.delete(machineId);
  }

  /** Whether `machineId` reported every chunk of the build. */
  complete(machineId: string): boolean {
    const h = this.holdings.get(machineId);
    if (!h) return false;
    const whole = h.chunks >> 3;
    for (let byte = 0; byte < whole; byte++) if (h.bits[byte] !== 0xff) return false;
    for (let i = whole * 8; i < h.chunks; i++)
      if ((h.bits[i >> 3]! & (1 << (i & 7))) === 0) return false;
    return true;
  }

  /** Moves one holder's chunks in the counts from `before` to `after` (either may be none). */
  recount(before: Uint8Array | undefined, after: Uint8Array | undefined): void {
    const bytes = Math.max(before?.length ?? 0, after?.length ?? 0);
    const counts = this.counts;
    for (let byte = 0; byte < bytes; byte++) {
      const was = before?.[byte] ?? 0;
      const now = after?.[byte] ?? 0;
      let changed = was ^ now;
      for (let i = byte * 8; changed !== 0; i++, changed >>= 1) {
        if ((changed & 1) === 0 || i >= counts.length) continue;
        if ((now >> (i & 7)) & 1) {
          if (counts[i]!++ === 0) {
            this.unheld--;
            this.unseed(i); // someone holds it now: peers can get it there
          }
        } else if (--counts[i]! === 0) this.unheld++;
      }
    }
  }
}

export class Tracker {
  readonly #o: TrackerOptions;
  readonly #builds = new Map<number, Swarm>();
  readonly #keys = new Map<string, Uint8Array>();
  /** Machines an agent reported for wrong bytes: listed to no one, their holdings ignored. */
  readonly #distrusted = new Set<string>();

  constructor(options: TrackerOptions) {
    this.#o = options;
  }

  /** Records a `have`; a report replaces the previous one of that machine for that build. */
  report(machineId: string, have: { buildId: number; chunks: number; bits: Uint8Array }): void {
    let swarm = this.#builds.get(have.buildId);
    if (!swarm) {
      swarm = new Swarm();
      this.#builds.set(have.buildId, swarm);
    }
    swarm.set(
      machineId,
      { chunks: have.chunks, bits: have.bits },
      !this.#distrusted.has(machineId),
    );
  }

  /**
   * An agent reported `machineId` for wrong bytes. One report is enough: the cost of a false
   * report is only that the accused agent is left out of the mesh (it still gets every chunk
   * from the relay), while a bad peer left in costs every agent a timeout and a refetch.
   */
  distrust(machineId: string): void {
    if (this.#distrusted.has(machineId)) return;
    if (this.#distrusted.size > 100_000) {
      // Bounded memory: start over, counting everyone's holdings again.
      for (const id of this.#distrusted) this.#recount(id, 1);
      this.#distrusted.clear();
    }
    this.#distrusted.add(machineId);
    this.#recount(machineId, -1);
  }

  /** The machine disconnected: it serves no one now, and its key is void. */
  forget(machineId: string): void {
    this.#keys.delete(machineId);
    const trusted = !this.#distrusted.has(machineId);
    for (const [build, swarm] of this.#builds) {
      swarm.delete(machineId, trusted);
      if (swarm.holdings.size === 0) {
        this.#builds.delete(build);
      }
    }
  }

  /** How many connected, trusted machines hold chunk `index` of `buildId` (tests, metrics). */
  holders(buildId: number, index: number): number {
    return this.#builds.get(buildId)?.counts[index] ?? 0;
  }

  /**
   * The `peers` message for `machineId` about `buildId`: up to maxPeers from a random sample,
   * those holding a chunk it lacks first. A machine that holds every chunk gets none (it only
   * serves), but still its peer key. With `peers: false` (the agent has all the peers it can
   * use) the list is empty and nothing is sampled or signed; the seed list is still there.
   */
  peersFor(machineId: string, buildId: number, o: { peers?: boolean } = {}): PeersMessage {
    const swarm = this.#builds.get(buildId);
    const own = swarm?.holdings.get(machineId);
    const maxPeers = this.#o.maxPeers ?? 12;
    const useful: string[] = [];
    const rest: string[] = [];
    const complete = swarm?.complete(machineId) ?? false;
    // The sample comes in random order, so no one peer is everybody's first choice.
    for (const other of swarm && !complete && o.peers !== false
      ? this.#sample(swarm, this.#o.sample ?? 8 * maxPeers)
      : []) {
      if (useful.length >= maxPeers) break;
      if (other === machineId || this.#distrusted.has(other) || !this.#keys.has(other)) continue;
      if (holdsUseful(swarm!.holdings.get(other)!.bits, own?.bits)) useful.push(other);
      else if (rest.length < maxPeers) rest.push(other);
    }
    const peers: PeersMessage["peers"] = [];
    for (const id of [...useful, ...rest]) {
      if (peers.length >= maxPeers) break;
      const url = this.#o.peerUrl(id);
      if (url !== null)
        peers.push({
          machine_id: id,
          peer_url: url,
          ticket: peerTicket(this.#keyOf(id), machineId),
        });
    }
    return {
      type: "peers",
      build_id: buildId,
      peer_key: toBase64(this.#keyOf(machineId)),
      peers,
      seed: own && !complete ? this.#seedsFor(machineId, own, swarm!) : [],
    };
  }

  /** Every holder of the swarm in random order when there are at most `n`, else `n` of them. */
  #sample(swarm: Swarm, n: number): string[] {
    const ids = swarm.ids;
    const random = this.#o.random ?? Math.random;
    if (ids.length <= n) {
      const all = [...ids];
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [all[i], all[j]] = [all[j]!, all[i]!];
      }
      return all;
    }
    const picked = new Set<string>();
    while (picked.size < n) picked.add(ids[Math.floor(random() * ids.length)]!);
    return [...picked];
  }

  /**
   * The chunks `machineId` should fetch from the relay: those no connected agent holds, each
   * assigned to one agent at a time (super-seeding), at most `maxSeeds` per agent.
   */
  #seedsFor(machineId: string, own: Holding, swarm: Swarm): number[] {
    const now = (this.#o.now ?? Date.now)();
    swarm.expireSeeds(now);
    const mine = [...(swarm.seedsOf.get(machineId) ?? [])];
    const max = this.#o.maxSeeds ?? 2;
    // Every chunk nobody holds is assigned already (or there is none): nothing to look for.
    if (mine.length >= max || swarm.unheld <= swarm.seeding.size) return mine;
    const start = Math.floor((this.#o.random ?? Math.random)() * own.chunks);
    for (let k = 0; k < own.chunks && mine.length < max; k++) {
      const i = (start + k) % own.chunks;
      if (swarm.seeding.has(i) || (swarm.counts[i] ?? 0) > 0) continue;
      swarm.seed(i, machineId, now + (this.#o.seedTtlMs ?? 10_000));
      mine.push(i);
    }
    return mine;
  }

  /** Adds (+1) or removes (-1) a machine's holdings from every swarm's counts. */
  #recount(machineId: string, by: 1 | -1): void {
    for (const swarm of this.#builds.values()) {
      const holding = swarm.holdings.get(machineId);
      if (!holding) continue;
      if (by === 1) swarm.recount(undefined, holding.bits);
      else swarm.recount(holding.bits, undefined);
    }
  }

  #keyOf(machineId: string): Uint8Array {
    let key = this.#keys.get(machineId);
    if (!key) {
      key = crypto.getRandomValues(new Uint8Array(32));
      this.#keys.set(machineId, key);
    }
    return key;
  }
}

/** Whether `theirs` holds a chunk that `mine` lacks. */
function holdsUseful(theirs: Uint8Array, mine: Uint8Array | undefined): boolean {
  for (let i = 0; i < theirs.length; i++) if ((theirs[i]! & ~(mine?.[i] ?? 0)) !== 0) return true;
  return false;
}
