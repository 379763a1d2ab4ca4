/**
 * The tracker (DESIGN section 8): which connected agent holds which chunks of which build,
 * from their `have` reports, and for each agent a bounded random set of peers, those holding
 * chunks it lacks first. An agent that finished stays listed (a seeder) while it is connected.
 * Each agent gets a random peer key for this relay session; tickets to reach a peer are HMACs
 * under that peer's key (protocol/peer-tracker.ts).
 */

import { toBase64 } from "../protocol/encoding.ts";
import { type PeerEntry, type PeersMessage, peerTicket } from "../protocol/peer-tracker.ts";

export interface TrackerOptions {
  /** Where a machine's peers reach it (its hello's peer_url), or null when it serves none. */
  peerUrl: (machineId: string) => string | null;
  /** Most peers handed out at once. Default 12. */
  maxPeers?: number;
  /** Chunks assigned to one agent to seed at once. Default 4. */
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

export class Tracker {
  readonly #o: TrackerOptions;
  /** build → machine → what it holds. */
  readonly #builds = new Map<number, Map<string, Holding>>();
  readonly #keys = new Map<string, Uint8Array>();
  /** Machines an agent reported for wrong bytes: listed to no one, their holdings ignored. */
  readonly #distrusted = new Set<string>();
  /** build → chunk → who seeds it, until when. */
  readonly #seeding = new Map<number, Map<number, { machineId: string; until: number }>>();

  constructor(options: TrackerOptions) {
    this.#o = options;
  }

  /** Records a `have`; a report replaces the previous one of that machine for that build. */
  report(machineId: string, have: { buildId: number; chunks: number; bits: Uint8Array }): void {
    let holders = this.#builds.get(have.buildId);
    if (!holders) {
      holders = new Map();
      this.#builds.set(have.buildId, holders);
    }
    holders.set(machineId, { chunks: have.chunks, bits: have.bits });
  }

  /**
   * An agent reported `machineId` for wrong bytes. One report is enough: the cost of a false
   * report is only that the accused agent is left out of the mesh (it still gets every chunk
   * from the relay), while a bad peer left in costs every agent a timeout and a refetch.
   */
  distrust(machineId: string): void {
    if (this.#distrusted.size > 100_000) this.#distrusted.clear();
    this.#distrusted.add(machineId);
  }

  /** The machine disconnected: it serves no one now, and its key is void. */
  forget(machineId: string): void {
    this.#keys.delete(machineId);
    for (const seeding of this.#seeding.values())
      for (const [i, s] of seeding) if (s.machineId === machineId) seeding.delete(i);
    for (const [build, holders] of this.#builds) {
      holders.delete(machineId);
      if (holders.size === 0) {
        this.#builds.delete(build);
        this.#seeding.delete(build);
      }
    }
  }

  /** How many connected machines hold chunk `index` of `buildId` (for tests and metrics). */
  holders(buildId: number, index: number): number {
    let n = 0;
    for (const h of this.#builds.get(buildId)?.values() ?? []) if (bit(h.bits, index)) n++;
    return n;
  }

  /** The `peers` message for `machineId` about `buildId`. */
  peersFor(machineId: string, buildId: number): PeersMessage {
    const own = this.#builds.get(buildId)?.get(machineId);
    const random = this.#o.random ?? Math.random;
    const candidates: { entry: PeerEntry; useful: number; order: number }[] = [];
    for (const [other, holding] of this.#builds.get(buildId) ?? []) {
      if (other === machineId || this.#distrusted.has(other)) continue;
      const url = this.#o.peerUrl(other);
      if (url === null || !this.#keys.has(other)) continue;
      const useful = countUseful(holding.bits, own?.bits);
      const entry = {
        machine_id: other,
        peer_url: url,
        ticket: peerTicket(this.#keyOf(other), machineId),
      };
      candidates.push({ entry, useful, order: random() });
    }
    // Peers with something this machine lacks first, the rest after; random within each group
    // so that no one peer is everybody's first choice.
    candidates.sort((a, b) => Number(b.useful > 0) - Number(a.useful > 0) || a.order - b.order);
    return {
      type: "peers",
      build_id: buildId,
      peer_key: toBase64(this.#keyOf(machineId)),
      peers: candidates.slice(0, this.#o.maxPeers ?? 12).map((c) => c.entry),
      seed: own ? this.#seedsFor(machineId, buildId, own) : [],
    };
  }

  /**
   * The chunks `machineId` should fetch from the relay: those no connected agent holds, each
   * assigned to one agent at a time (super-seeding), at most `maxSeeds` per agent.
   */
  #seedsFor(machineId: string, buildId: number, own: Holding): number[] {
    const now = (this.#o.now ?? Date.now)();
    let seeding = this.#seeding.get(buildId);
    if (!seeding) {
      seeding = new Map();
      this.#seeding.set(buildId, seeding);
    }
    const holders = [...(this.#builds.get(buildId) ?? [])]
      .filter(([id]) => !this.#distrusted.has(id))
      .map(([, h]) => h);
    const held = (i: number) => holders.some((h) => bit(h.bits, i));
    const mine: number[] = [];
    for (const [i, s] of seeding) {
      if (held(i) || s.until < now) seeding.delete(i);
      else if (s.machineId === machineId) mine.push(i);
    }
    const max = this.#o.maxSeeds ?? 4;
    const start = Math.floor((this.#o.random ?? Math.random)() * own.chunks);
    for (let k = 0; k < own.chunks && mine.length < max; k++) {
      const i = (start + k) % own.chunks;
      if (seeding.has(i) || held(i)) continue;
      seeding.set(i, { machineId, until: now + (this.#o.seedTtlMs ?? 10_000) });
      mine.push(i);
    }
    return mine;
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

function bit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

/** Chunks in `theirs` and not in `mine`, counted by bytes of the bitfield. */
function countUseful(theirs: Uint8Array, mine: Uint8Array | undefined): number {
  let n = 0;
  for (let i = 0; i < theirs.length; i++) {
    let b = theirs[i]! & ~(mine?.[i] ?? 0);
    while (b) {
      n += b & 1;
      b >>= 1;
    }
  }
  return n;
}
