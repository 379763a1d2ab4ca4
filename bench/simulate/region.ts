/**
 * One region of the deploy simulation (bench/simulate/main.ts): its relays, each with the
 * relay's own Tracker (region-relay/tracker.ts), and its agents, each choosing pieces with the
 * agent's own pickPiece (agent-deno/piece-picker.ts) and its sources the way agent-deno/mesh.ts
 * does (the least busy peer in reach that holds the piece; the relay when the tracker asked it
 * to seed that piece, or when no peer in reach got it within the grace).
 *
 * Time is continuous (an event queue). Links are modelled, not run: each end of a link is a
 * queue served at its bandwidth (a sender's uploads one after the other, a receiver's
 * downloads likewise), and a transfer ends when both ends have carried it; the receiver's
 * link takes its share from when the sender starts (a transfer queued behind a sender's other
 * uploads, or behind the relay's bucket read, leaves the receiver's link free meanwhile);
 * each agent keeps `concurrency` pieces in flight, as the agent's download does (default 4),
 * at most `seedSlots` of them the pieces the tracker asked it to seed, so peer latency
 * is paid once per source change, not per piece; a relay
 * reads a chunk from its bucket the first time an agent asks it for it, at the bucket's
 * bandwidth and latency, and serves it from its cache after; it serves at most
 * `relayFallbackSlots` pieces at once to agents it did not ask to seed them (relay_busy).
 */

import {
  type Lacking,
  type PickOptions,
  pickFromPeers,
  pickPiece,
} from "../../agent-deno/piece-picker.ts";
import { seededRandom } from "../../protocol/test-support.ts";
import { Tracker } from "../../region-relay/tracker.ts";

/** Peers pickFromPeers looks at per pick (its default). */
const PEER_TRIES = 3;

export interface SimParams {
  region: number;
  agents: number;
  relays: number;
  pieces: number;
  pieceBytes: number;
  /** Bytes per second. */
  hostBps: number;
  relayBps: number;
  bucketBps: number;
  latencyS: number;
  bucketLatencyS: number;
  slowFraction: number;
  slowFactor: number;
  dyingFraction: number;
  /** Goals reach agents spread over this (the push path's spread). */
  goalSpreadS: number;
  maxPeers: number;
  /** Pieces in flight per agent (the agent's --download-concurrency). */
  concurrency: number;
  /**
   * Of those, pieces the tracker asked an agent to seed fetched at once (the mesh's
   * seedSlots: half the concurrency, as the agent's main.ts sets it).
   */
  seedSlots: number;
  relayGraceS: number;
  /**
   * Pieces a relay serves at once to agents that could wait for a peer (the relay's
   * --fallback-slots); past it such an ask is refused (relay_busy) and the agent asks its
   * peers again 100-300 ms later, as mesh.ts does. 0: no bound. Seeding asks are never refused.
   */
  relayFallbackSlots: number;
  /** Ask the least busy peers first for the rarest piece they hold (pickFromPeers). */
  peerFirst: boolean;
  /** The simulation gives up past this simulated time. */
  horizonS: number;
  seed: number;
}

export interface RegionResult {
  region: number;
  agents: number;
  /** Seconds from the deploy to each finished agent's last piece, full-speed agents only. */
  finishFull: number[];
  /** Each finished agent's time over its own ideal (size / its own bandwidth), all agents. */
  ownRatios: number[];
  slow: number;
  died: number;
  unfinished: number;
  bucketReads: number;
  /** Most bucket reads of one chunk by one relay (the design's target: 1). */
  maxReadsPerChunkPerRelay: number;
  relayPiecesServed: number;
  /** Fallback asks the relays refused as busy. */
  relayBusy: number;
  peerPiecesServed: number;
  /** Frames in and out of one relay's tracker (have reports and peers answers) per second. */
  relayMessagesPerS: { mean: number; peak: number };
  trackerCpuS: number;
  picks: number;
  endS: number;
}

const KIND_START = 0;
const KIND_IDLE = 1;
const KIND_COMPLETE = 2;
const KIND_DIE = 3;
const KIND_SEEDER_REPORT = 4;
/** A sender starts a transfer it had queued: the receiver's link takes its share from then. */
const KIND_SEND = 5;

/** `Events.from` of a piece from the agent's relay: one it was asked to seed, or a fallback. */
const FROM_RELAY = -1;
const FROM_RELAY_FALLBACK = -2;

/**
 * A binary min-heap of events by time, kept in typed arrays (no object per event: 100,000
 * agents make hundreds of millions of them). `pop()` leaves the earliest in `t`, `kind`,
 * `agent`, `piece` and `from` (an agent index, or FROM_RELAY / FROM_RELAY_FALLBACK).
 */
class Events {
  size = 0;
  t = 0;
  kind = 0;
  agent = 0;
  piece = 0;
  from = 0;
  #t = new Float64Array(1024);
  #kind = new Int32Array(1024);
  #agent = new Int32Array(1024);
  #piece = new Int32Array(1024);
  #from = new Int32Array(1024);

  push(t: number, kind: number, agent: number, piece = -1, from = -1): void {
    if (this.size === this.#t.length) this.#grow();
    let i = this.size++;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (this.#t[up]! <= t) break;
      this.#move(up, i);
      i = up;
    }
    this.#set(i, t, kind, agent, piece, from);
  }

  pop(): void {
    this.t = this.#t[0]!;
    this.kind = this.#kind[0]!;
    this.agent = this.#agent[0]!;
    this.piece = this.#piece[0]!;
    this.from = this.#from[0]!;
    const last = --this.size;
    if (last === 0) return;
    const t = this.#t[last]!;
    const kind = this.#kind[last]!;
    const agent = this.#agent[last]!;
    const piece = this.#piece[last]!;
    const from = this.#from[last]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const r = l + 1;
      const c = r < last && this.#t[r]! < this.#t[l]! ? r : l;
      if (this.#t[c]! >= t) break;
      this.#move(c, i);
      i = c;
    }
    this.#set(i, t, kind, agent, piece, from);
  }

  #move(from: number, to: number): void {
    this.#t[to] = this.#t[from]!;
    this.#kind[to] = this.#kind[from]!;
    this.#agent[to] = this.#agent[from]!;
    this.#piece[to] = this.#piece[from]!;
    this.#from[to] = this.#from[from]!;
  }

  #set(i: number, t: number, kind: number, agent: number, piece: number, from: number): void {
    this.#t[i] = t;
    this.#kind[i] = kind;
    this.#agent[i] = agent;
    this.#piece[i] = piece;
    this.#from[i] = from;
  }

  #grow(): void {
    const grown = <A extends Float64Array | Int32Array>(a: A): A => {
      const b = new (a.constructor as new (n: number) => A)(a.length * 2);
      b.set(a);
      return b;
    };
    this.#t = grown(this.#t);
    this.#kind = grown(this.#kind);
    this.#agent = grown(this.#agent);
    this.#piece = grown(this.#piece);
    this.#from = grown(this.#from);
  }
}

export function simulateRegion(p: SimParams): RegionResult {
  const random = seededRandom(p.seed * 7919 + p.region);
  const n = p.agents;
  const P = p.pieces;
  const bitBytes = Math.ceil(P / 8);
  const ids = Array.from({ length: n }, (_, a) => `r${p.region}-m${a}`);
  const indexOf = new Map(ids.map((id, a) => [id, a]));
  let simNow = 0;
  let trackerMs = 0;
  const trackers = Array.from(
    { length: p.relays },
    () =>
      new Tracker({
        peerUrl: (id) => `sim://${id}`,
        maxPeers: p.maxPeers,
        random,
        now: () => simNow * 1000,
      }),
  );
  const relayOf = (a: number) => a % p.relays;

  const bits = new Uint8Array(n * bitBytes);
  // An agent has at most 2 × maxPeers peers: a byte per count while that fits (half the
  // memory, and this array is touched for every neighbour of every piece received).
  const nbrCount = 2 * p.maxPeers <= 255 ? new Uint8Array(n * P) : new Uint16Array(n * P);
  const nbrs: number[][] = Array.from({ length: n }, () => []);
  const remaining: number[][] = Array.from({ length: n }, () =>
    Array.from({ length: P }, (_, i) => i),
  );
  const pos = new Int32Array(n * P);
  for (let a = 0; a < n; a++) for (let i = 0; i < P; i++) pos[a * P + i] = i;
  /** `remaining` as a bitfield per agent, with `pos`: what pickFromPeers calls `lacking`. */
  const need = new Uint8Array(n * bitBytes);
  for (let a = 0; a < n; a++)
    for (let i = 0; i < P; i++) need[a * bitBytes + (i >> 3)]! |= 1 << (i & 7);
  const lacking: Lacking[] = Array.from({ length: n }, (_, a) => ({
    bits: need.subarray(a * bitBytes, (a + 1) * bitBytes),
    at: pos.subarray(a * P, (a + 1) * P),
  }));
  const done = new Int32Array(n);
  const picks = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  const finishedAt = new Float64Array(n).fill(Number.NaN);
  const uploadFree = new Float64Array(n);
  const downloadFree = new Float64Array(n);
  const inFlight = new Int32Array(n);
  /** Pieces the tracker asked each agent to seed, in flight from the relay. */
  const seedsInFlight = new Int32Array(n);
  const lastReport = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
  const waitSince = new Float64Array(n).fill(Number.NaN);
  /**
   * Bumped whenever what an agent could get changes (a peer in reach got a piece it lacks, a peer was
   * linked, the tracker answered, a piece was put back). A poll that found nothing in reach
   * finds nothing again until it changes or the grace runs out, so it is not scanned again.
   */
  const changed = new Uint32Array(n);
  const failedAt = new Float64Array(n).fill(-1);
  const lastSource = new Int32Array(n).fill(-2);
  const seeds: Set<number>[] = Array.from({ length: n }, () => new Set());
  const rate = new Float64Array(n).fill(p.hostBps);
  let slow = 0;
  for (let a = 0; a < n; a++) {
    if (random() < p.slowFraction) {
      rate[a] = p.hostBps / p.slowFactor;
      slow++;
    }
  }

  const relayFree = new Float64Array(p.relays);
  /** Fallback pieces each relay is serving now. */
  const fallbackServing = new Int32Array(p.relays);
  let relayBusy = 0;
  const bucketFree = new Float64Array(p.relays);
  const cachedAt = new Float64Array(p.relays * P).fill(Number.NaN);
  const reads = new Uint16Array(p.relays * P);
  const messages = Array.from({ length: p.relays }, () => new Map<number, number>());
  let relayServed = 0;
  let peerServed = 0;
  let bucketReads = 0;

  const events = new Events();
  const ideal = p.pieces * p.pieceBytes;
  for (let a = 0; a < n; a++) {
    events.push(random() * p.goalSpreadS, KIND_START, a);
    if (random() < p.dyingFraction) {
      // Dying hosts go down while the deploy is under way.
      const t = random() * 1.5 * (ideal / p.hostBps);
      events.push(t, KIND_DIE, a);
    }
  }

  /** Each agent's `have` bitfield, as its peers see it. */
  const held = Array.from({ length: n }, (_, a) => bits.subarray(a * bitBytes, (a + 1) * bitBytes));
  const hasBit = (a: number, i: number) => (bits[a * bitBytes + (i >> 3)]! & (1 << (i & 7))) !== 0;

  const link = (a: number, b: number) => {
    nbrs[a]!.push(b);
    nbrs[b]!.push(a);
    changed[a]!++;
    changed[b]!++;
    for (let i = 0; i < P; i++) {
      if (hasBit(b, i)) nbrCount[a * P + i]!++;
      if (hasBit(a, i)) nbrCount[b * P + i]!++;
    }
  };

  const countMessage = (relay: number, frames: number) => {
    const second = Math.floor(simNow);
    const m = messages[relay]!;
    m.set(second, (m.get(second) ?? 0) + frames);
  };

  /** A `have` report and the tracker's `peers` answer, as mesh.ts and mesh-handler.ts do. */
  const report = (a: number) => {
    lastReport[a] = simNow;
    const r = relayOf(a);
    const t0 = performance.now();
    const tracker = trackers[r]!;
    tracker.report(ids[a]!, {
      buildId: 1,
      chunks: P,
      bits: bits.slice(a * bitBytes, (a + 1) * bitBytes),
    });
    // As mesh.ts does: peers are asked for only while there is room for more.
    const answer = tracker.peersFor(ids[a]!, 1, {
      peers: done[a] !== P && nbrs[a]!.length < p.maxPeers,
    });
    trackerMs += performance.now() - t0;
    countMessage(r, 2);
    if (done[a] === P) return;
    seeds[a] = new Set(answer.seed);
    changed[a]!++;
    for (const peer of answer.peers) {
      if (nbrs[a]!.length >= p.maxPeers) break;
      const b = indexOf.get(peer.machine_id)!;
      if (!alive[b] || nbrs[b]!.length >= 2 * p.maxPeers || nbrs[a]!.includes(b)) continue;
      link(a, b);
    }
  };

  const take = (a: number, at: number) => {
    const list = remaining[a]!;
    const i = list[at]!;
    need[a * bitBytes + (i >> 3)]! &= ~(1 << (i & 7));
    const last = list.pop()!;
    if (at < list.length) {
      list[at] = last;
      pos[a * P + last] = at;
    }
    return i;
  };

  const putBack = (a: number, i: number) => {
    changed[a]!++;
    need[a * bitBytes + (i >> 3)]! |= 1 << (i & 7);
    pos[a * P + i] = remaining[a]!.length;
    remaining[a]!.push(i);
  };

  /**
   * A piece from the agent's relay. One the relay has not read yet is sent once it has: until
   * then neither the relay's link nor the agent's carries it (the agent's other slots go on).
   */
  const fromRelay = (a: number, i: number, fallback: boolean) => {
    const r = relayOf(a);
    const slot = r * P + i;
    if (Number.isNaN(cachedAt[slot]!)) {
      const start = Math.max(simNow, bucketFree[r]!);
      bucketFree[r] = start + p.pieceBytes / p.bucketBps;
      cachedAt[slot] = bucketFree[r]! + p.bucketLatencyS;
      reads[slot]!++;
      bucketReads++;
    }
    relayServed++;
    if (fallback) fallbackServing[r]!++;
    else seedsInFlight[a]!++;
    const from = fallback ? FROM_RELAY_FALLBACK : FROM_RELAY;
    if (cachedAt[slot]! > simNow) {
      inFlight[a]!++;
      events.push(cachedAt[slot]!, KIND_SEND, a, i, from);
    } else relaySend(a, i, from);
  };

  const relaySend = (a: number, i: number, from: number) => {
    const r = relayOf(a);
    const start = Math.max(simNow, relayFree[r]!);
    relayFree[r] = start + p.pieceBytes / p.relayBps;
    const switched = lastSource[a] !== -1 ? p.latencyS : 0;
    lastSource[a] = -1;
    book(a, i, from, start, relayFree[r]!, switched);
  };

  /**
   * The receiving end's share of a transfer whose sender starts at `start` (now: a sender that
   * starts later books it then, a KIND_SEND), done at `sent`.
   */
  const book = (a: number, i: number, from: number, start: number, sent: number, extra: number) => {
    const down = Math.max(start, downloadFree[a]!) + p.pieceBytes / rate[a]!;
    downloadFree[a] = down;
    inFlight[a]!++;
    events.push(Math.max(sent, down) + extra, KIND_COMPLETE, a, i, from);
  };

  const idle = (a: number) => {
    if (!alive[a] || done[a] === P) return;
    if (simNow - lastReport[a]! >= 0.5) report(a);
    while (inFlight[a]! < p.concurrency && remaining[a]!.length > 0) {
      if (!request(a)) break;
    }
  };

  /** Each agent's pick options, made once (a pick runs for every piece of every agent). */
  type Pick = PickOptions & { tries: number; lacking: Lacking };
  const pickPlain: Pick[] = Array.from({ length: n }, (_, a) => ({
    fetched: 0,
    holders: (i: number) => nbrCount[a * P + i]!,
    random,
    tries: PEER_TRIES,
    lacking: lacking[a]!,
  }));
  const pickSeeding: Pick[] = pickPlain.map((o, a) => ({
    ...o,
    seeded: (i: number) => seeds[a]!.has(i),
  }));
  const heldBy = (b: number) => held[b];

  /**
   * The `k` live peers in reach with the shortest upload queue, shortest first, ties at random:
   * what pickFromPeers looks at of mesh.ts's least-busy order (a full sort per pick would cost
   * more than the pick).
   */
  const chosen: number[] = [];
  const chosenKey: number[] = [];
  const leastBusy = (a: number, k: number): number[] => {
    chosen.length = 0;
    chosenKey.length = 0;
    for (const b of nbrs[a]!) {
      if (!alive[b]) continue;
      const key = uploadFree[b]!;
      let i = chosen.length;
      if (i === k && !(key < chosenKey[k - 1]! || (key === chosenKey[k - 1] && random() < 0.5)))
        continue;
      if (i === k) i--;
      while (i > 0 && (key < chosenKey[i - 1]! || (key === chosenKey[i - 1] && random() < 0.5))) {
        chosen[i] = chosen[i - 1]!;
        chosenKey[i] = chosenKey[i - 1]!;
        i--;
      }
      chosen[i] = b;
      chosenKey[i] = key;
    }
    return chosen;
  };

  /** One piece asked for, as the agent's download and mesh.ts do; false when it must wait. */
  const request = (a: number): boolean => {
    if (failedAt[a] === changed[a] && simNow - waitSince[a]! < p.relayGraceS) {
      events.push(simNow + 0.05, KIND_IDLE, a);
      return false;
    }
    const list = remaining[a]!;
    const own = seeds[a]!;
    // As mesh.ts does: no seeding predicate while the tracker asked for nothing, or while
    // seedSlots of its seeds are in flight.
    const seeding = own.size > 0 && seedsInFlight[a]! < p.seedSlots;
    const pick = seeding ? pickSeeding[a]! : pickPlain[a]!;
    pick.fetched = picks[a]!;
    let at: number;
    let best = -1;
    const first = p.peerFirst ? pickFromPeers(list, leastBusy(a, PEER_TRIES), heldBy, pick) : null;
    if (first) {
      at = first.at;
      best = first.peer;
    } else {
      at = pickPiece(list, pick);
      // The least busy peer in reach holding it.
      const i = list[at]!;
      for (const b of nbrs[a]!) {
        if (!alive[b] || !hasBit(b, i)) continue;
        if (
          best < 0 ||
          uploadFree[b]! < uploadFree[best]! ||
          (uploadFree[b] === uploadFree[best] && random() < 0.5)
        )
          best = b;
      }
    }
    const i = list[at]!;
    if (best >= 0) {
      take(a, at);
      picks[a]!++;
      waitSince[a] = Number.NaN;
      const start = Math.max(simNow, uploadFree[best]!);
      uploadFree[best] = start + p.pieceBytes / rate[best]!;
      const switched = lastSource[a] !== best ? p.latencyS : 0;
      lastSource[a] = best;
      peerServed++;
      if (start > simNow) {
        // Queued behind the sender's other uploads: this link is free for others meanwhile.
        inFlight[a]!++;
        events.push(start + switched, KIND_SEND, a, i, best);
      } else book(a, i, best, start, uploadFree[best]!, switched);
      return true;
    }
    if (Number.isNaN(waitSince[a]!)) waitSince[a] = simNow;
    if (own.has(i) || simNow - waitSince[a]! >= p.relayGraceS) {
      const fallback = !own.has(i);
      const slots = p.relayFallbackSlots;
      if (fallback && slots > 0 && fallbackServing[relayOf(a)]! >= slots) {
        // relay_busy: the peers are asked again first, a little later.
        relayBusy++;
        const t = simNow + 0.1 + random() * 0.2;
        events.push(t, KIND_IDLE, a);
        return false;
      }
      take(a, at);
      picks[a]!++;
      waitSince[a] = Number.NaN;
      fromRelay(a, i, fallback);
      return true;
    }
    // No one in reach holds it yet: look again shortly, as mesh.ts polls every 50 ms.
    failedAt[a] = changed[a]!;
    events.push(simNow + 0.05, KIND_IDLE, a);
    return false;
  };

  const complete = (e: Events) => {
    const a = e.agent;
    if (e.from === FROM_RELAY_FALLBACK) fallbackServing[relayOf(a)]!--;
    if (e.from === FROM_RELAY) seedsInFlight[a]!--;
    if (!alive[a]) return;
    inFlight[a]!--;
    if (e.from >= 0 && !alive[e.from]) {
      putBack(a, e.piece); // the sender died mid-transfer: ask again
    } else {
      bits[a * bitBytes + (e.piece >> 3)]! |= 1 << (e.piece & 7);
      const byte = e.piece >> 3;
      const bit = 1 << (e.piece & 7);
      for (const b of nbrs[a]!) {
        nbrCount[b * P + e.piece]!++;
        if (need[b * bitBytes + byte]! & bit) changed[b]!++; // b still lacks it
      }
      done[a] = done[a]! + 1;
      if (done[a] === P) {
        finishedAt[a] = simNow;
        report(a);
        events.push(simNow + 5, KIND_SEEDER_REPORT, a);
        return;
      }
    }
    idle(a);
  };

  /** A queued transfer starts (KIND_SEND): the relay had read the piece, or the peer got to it. */
  const send = (e: Events) => {
    const a = e.agent;
    inFlight[a]!--;
    if (!alive[a]) {
      if (e.from === FROM_RELAY_FALLBACK) fallbackServing[relayOf(a)]!--;
      return;
    }
    if (e.from < 0) relaySend(a, e.piece, e.from);
    // The sender's link was booked when it was asked; the receiver's is booked now.
    else book(a, e.piece, e.from, simNow, simNow + p.pieceBytes / rate[e.from]!, 0);
  };

  const die = (a: number) => {
    if (!alive[a]) return;
    alive[a] = 0;
    trackers[relayOf(a)]!.forget(ids[a]!);
    for (const b of nbrs[a]!) {
      const list = nbrs[b]!;
      list.splice(list.indexOf(a), 1);
      for (let i = 0; i < P; i++) if (hasBit(a, i)) nbrCount[b * P + i]!--;
    }
    nbrs[a] = [];
  };

  let running = n;
  while (events.size > 0) {
    events.pop();
    const e = events;
    simNow = e.t;
    if (simNow > p.horizonS) break;
    switch (e.kind) {
      case KIND_START:
      case KIND_IDLE:
        idle(e.agent);
        break;
      case KIND_COMPLETE:
        complete(e);
        if (done[e.agent] === P) running--;
        break;
      case KIND_DIE:
        if (alive[e.agent] && done[e.agent] !== P) running--;
        die(e.agent);
        break;
      case KIND_SEND:
        send(events);
        break;
      case KIND_SEEDER_REPORT:
        if (alive[e.agent] && running > 0) {
          report(e.agent);
          events.push(simNow + 5, KIND_SEEDER_REPORT, e.agent);
        }
        break;
    }
    if (running === 0) break;
  }

  const finishFull: number[] = [];
  const ownRatios: number[] = [];
  let died = 0;
  let unfinished = 0;
  for (let a = 0; a < n; a++) {
    if (!alive[a]) died++;
    else if (Number.isNaN(finishedAt[a]!)) unfinished++;
    else {
      if (rate[a] === p.hostBps) finishFull.push(finishedAt[a]!);
      ownRatios.push(finishedAt[a]! / (ideal / rate[a]!));
    }
  }
  let maxReads = 0;
  for (const r of reads) maxReads = Math.max(maxReads, r);
  let total = 0;
  let peak = 0;
  let seconds = 0;
  for (const m of messages) {
    for (const v of m.values()) {
      total += v;
      peak = Math.max(peak, v);
    }
    seconds += Math.max(1, m.size);
  }
  return {
    region: p.region,
    agents: n,
    finishFull,
    ownRatios,
    slow,
    died,
    unfinished,
    bucketReads,
    maxReadsPerChunkPerRelay: maxReads,
    relayPiecesServed: relayServed,
    relayBusy,
    peerPiecesServed: peerServed,
    relayMessagesPerS: { mean: total / seconds, peak },
    trackerCpuS: trackerMs / 1000,
    picks: picks.reduce((s, v) => s + v, 0),
    endS: simNow,
  };
}
