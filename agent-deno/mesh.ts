/**
 * The agent's side of the mesh (DESIGN section 8), a PieceSource: a chunk comes from a peer
 * that holds it (in the endgame from two at once, first answer wins), and from the relay only
 * when no peer in reach has it or the peers failed. The download follows this source's order
 * (piece-picker.ts): peer first, the least busy peer asked for the rarest chunk it holds. What the agent holds is told to
 * its peers (`have` frames) and to the relay's tracker (`have` reports, answered with `peers`:
 * whom to connect to, with tickets; asked for only while it has room for more peers). A peer whose bytes fail verification is banned for good,
 * logged (`peer:banned`) and reported to the relay. Every byte received counts against the
 * download rate limit, every byte sent against the upload limit. A request a peer does not
 * answer in time goes to another holder (`peer:timeout`); a peer that lets several requests in
 * a row time out is disconnected and not reconnected for a while (`peer:dropped`). The relay
 * is asked as a fallback (`?fallback=1`) for a chunk it did not ask this agent to seed: a
 * relay busy serving others says so (relay_busy), and the peers are asked again before it is.
 */

import { sleep } from "../protocol/backoff.ts";
import { fromBase64 } from "../protocol/encoding.ts";
import { encodeHave, parsePeers, ticketValid } from "../protocol/peer-tracker.ts";
import type { Logger } from "./log.ts";
import { MeshBuilds } from "./mesh-builds.ts";
import { PeerRequestFailed, PeerSession, Slots } from "./peer-session.ts";
import { type PickOptions, pickFromPeers, pickPiece } from "./piece-picker.ts";
import {
  type DownloadStart,
  type DownloadTracking,
  type PieceRequest,
  type PieceSource,
  RelayBusy,
} from "./piece-source.ts";
import { type RateLimit, UNLIMITED } from "./token-bucket.ts";

export interface MeshOptions {
  machineId: string;
  /** The source of last resort. */
  relay: PieceSource;
  /** A frame to the relay over the agent's WebSocket; false when not connected. */
  sendToRelay: (frame: string) => boolean;
  logger: Logger;
  /** False: no peers at all (relay only, still rate limited). Default true. */
  peers?: boolean;
  /** Peer connections kept (outgoing stop here; incoming up to twice it). Default 12. */
  maxPeers?: number;
  /** Pieces sent at once to all peers. Default 8. */
  uploadSlots?: number;
  /**
   * Chunks the tracker asked this agent to seed that are fetched at once: past it the rest of
   * the download's slots keep taking pieces from peers. Default 2 (main.ts passes half the
   * download concurrency).
   */
  seedSlots?: number;
  uploadLimit?: RateLimit;
  downloadLimit?: RateLimit;
  /** Per request to a peer. Default 10 s. */
  requestTimeoutMs?: number;
  maxOutstanding?: number;
  /** Timeouts in a row after which a peer is dropped. Default 3. */
  maxTimeoutsInARow?: number;
  /** How long a dropped peer is not reconnected. Default 60 s. */
  dropForMs?: number;
  connect?: (url: string) => WebSocket;
  /**
   * A chunk no peer in reach holds and the tracker did not ask this agent to seed: how long to
   * wait for a peer to get it before asking the relay. Default 2 s.
   */
  relayGraceMs?: number;
  /**
   * A fallback ask the relays refuse as busy is retried this many times (with peers asked in
   * between) before the relay is asked as a plain fetch, which it never refuses. Default 40
   * (about 8 s).
   */
  relayBusyTries?: number;
  /** Tests only: flip a byte of every piece sent to peers (a peer that serves wrong bytes). */
  corruptUploads?: boolean;
  /** Tests only: take peers' requests and never answer them (a peer that stalls). */
  stallUploads?: boolean;
}

export class Mesh implements PieceSource {
  readonly name = "mesh";
  readonly builds = new MeshBuilds();
  readonly #o: MeshOptions;
  readonly #sessions = new Map<string, PeerSession>();
  readonly #banned = new Set<string>();
  /** Dropped peers → when they may be reconnected. */
  readonly #dropped = new Map<string, number>();
  readonly #slots: Slots;
  readonly #timer: ReturnType<typeof setInterval>;
  #key: Uint8Array | null = null;
  /** "build:chunk" → the peer picked to ask for it (pickFromPeers). */
  readonly #picked = new Map<string, string>();
  /** build → chunks the tracker asked this agent to seed. */
  readonly #seeds = new Map<number, Set<number>>();
  #haveFlush: ReturnType<typeof setTimeout> | undefined;
  #ticks = 0;
  /** Pieces by source, for logs and the bench. */
  readonly counts = { peer: 0, relay: 0, banned: 0, relayBusy: 0 };

  constructor(options: MeshOptions) {
    this.#o = options;
    this.#slots = new Slots(options.uploadSlots ?? 8);
    // Active downloads report every 0.5 s (which also asks for fresh peers), the rest every 5 s.
    this.#timer = setInterval(() => this.#report(this.#ticks++ % 10 === 0), 500);
  }

  get enabled(): boolean {
    return this.#o.peers !== false;
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#haveFlush);
    for (const s of this.#sessions.values()) s.close("agent stopping");
  }

  /** A frame of a kind the relay link does not know. */
  onRelayFrame(type: string, value: Readonly<Record<string, unknown>>): void {
    if (type !== "peers" || !this.enabled) return;
    const message = parsePeers(value);
    if (!message) return;
    this.#key = fromBase64(message.peer_key);
    this.#seeds.set(message.build_id, new Set(message.seed));
    for (const p of message.peers) {
      if (this.#sessions.size >= (this.#o.maxPeers ?? 12)) break;
      if (this.#sessions.has(p.machine_id) || this.#shunned(p.machine_id)) continue;
      if (p.machine_id === this.#o.machineId) continue;
      const url = new URL(p.peer_url);
      url.searchParams.set("machine", this.#o.machineId);
      url.searchParams.set("ticket", p.ticket);
      let socket: WebSocket;
      try {
        socket = (this.#o.connect ?? ((u) => new WebSocket(u)))(url.toString());
      } catch {
        continue;
      }
      this.#attach(socket, p.machine_id);
    }
  }

  /** Whether `machineId` may connect with `ticket` (issued by the relay under our key). */
  admits(machineId: string, ticket: string): boolean {
    if (!this.enabled || this.#key === null || this.#shunned(machineId)) return false;
    if (this.#sessions.size >= 2 * (this.#o.maxPeers ?? 12)) return false;
    return ticketValid(this.#key, machineId, ticket);
  }

  /** An admitted peer's upgraded socket. */
  accept(socket: WebSocket, machineId: string): void {
    this.#attach(socket, machineId);
  }

  begin(start: DownloadStart): DownloadTracking {
    const build = this.builds.add(start);
    // Chunks the tracker asked to seed, picked and not yet done. A seed comes from the relay,
    // which may first have to read it from its bucket: with every slot on seeds, the agent's
    // link stood idle meanwhile, and the agents asked first finished last (bench/simulate:
    // p99.9 2.01 → 1.40 × T0 with at most half the slots on seeds; 1.25 with the tracker's
    // matching bound).
    const seeding = new Set<number>();
    const seedSlots = this.#o.seedSlots ?? 2;
    this.#report(true);
    return {
      pick: (remaining) => {
        build.remaining = remaining.length - 1;
        const seeds = this.#seeds.get(start.buildId);
        const o: PickOptions = {
          fetched: build.fetched++,
          holders: (i: number) => this.#holders(start.buildId, i),
        };
        if (seeds && seeds.size > 0 && seeding.size < seedSlots) o.seeded = (i) => seeds.has(i);
        // The least busy peers first, each asked for the rarest chunk it holds, so that every
        // peer's upload keeps busy; else the rarest chunk anyone holds, or one for the relay.
        const first = pickFromPeers(
          remaining,
          this.#leastBusy(),
          (s) => s.haves.get(start.buildId),
          o,
        );
        const at = first ? first.at : pickPiece(remaining, o);
        const chunk = remaining[at]!;
        if (first) this.#picked.set(`${start.buildId}:${chunk}`, first.peer.id);
        else if (seeds?.has(chunk)) seeding.add(chunk);
        return at;
      },
      done: (index) => {
        seeding.delete(index);
        this.#scheduleHave();
      },
      end: () => {
        build.active = false;
        this.#seeds.delete(start.buildId);
        for (const k of this.#picked.keys())
          if (k.startsWith(`${start.buildId}:`)) this.#picked.delete(k);
        this.#report(true);
      },
    };
  }

  async fetchPiece(
    piece: PieceRequest,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; from: string }> {
    const { buildId, index } = piece;
    let fallback = false;
    if (buildId !== undefined && index !== undefined) {
      const tried = new Set<string>();
      const grace = Date.now() + (this.#o.relayGraceMs ?? 2_000);
      for (let round = 0; round < 3; ) {
        const got = await this.#fromPeers(piece, buildId, index, tried, signal);
        if (got) return got;
        if (got === null) round++; // holders were asked and failed
        // No one in reach holds it: the relay, at once when this agent seeds it, else once
        // the grace ran out with no peer getting it.
        // Waiting makes sense with peers who may get it, or before the tracker's first answer.
        const hopeful = this.#sessions.size > 0 || !this.#seeds.has(buildId);
        if (!this.enabled || !hopeful || this.#seeds.get(buildId)?.has(index)) break;
        if (Date.now() > grace) break;
        await sleep(50, signal);
        signal.throwIfAborted();
      }
      // Not asked to seed it, with peers who may get it: a busy relay may say so (relay_busy),
      // and then the peers are asked again before the relay is, a few hundred ms later.
      fallback = this.enabled && !this.#seeds.get(buildId)?.has(index);
    }
    for (let busy = 0; ; busy++) {
      try {
        // After relayBusyTries refusals the relay is asked as a plain fetch, never refused.
        const asFallback = fallback && busy < (this.#o.relayBusyTries ?? 40);
        const got = await this.#o.relay.fetchPiece(piece, signal, { fallback: asFallback });
        await (this.#o.downloadLimit ?? UNLIMITED).take(got.bytes.length, signal);
        this.counts.relay++;
        return got;
      } catch (err) {
        if (!(err instanceof RelayBusy)) throw err;
        this.counts.relayBusy++;
      }
      await sleep(100 + Math.random() * 200, signal);
      signal.throwIfAborted();
      if (buildId === undefined || index === undefined) continue;
      const got = await this.#fromPeers(piece, buildId, index, new Set(), signal);
      if (got) return got;
    }
  }

  /** The piece from a peer; undefined when no peer in reach holds it, null when they failed. */
  async #fromPeers(
    piece: PieceRequest,
    buildId: number,
    index: number,
    tried: Set<string>,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; from: string } | null | undefined> {
    const endgame = (this.builds.get(buildId)?.remaining ?? 1) <= 0;
    const picked = this.#picked.get(`${buildId}:${index}`);
    this.#picked.delete(`${buildId}:${index}`);
    const holders = this.#leastBusy(picked)
      .filter((s) => !tried.has(s.id) && s.has(buildId, index))
      .slice(0, endgame ? 2 : 1);
    if (holders.length === 0) return undefined;
    for (const s of holders) tried.add(s.id);
    const race = new AbortController();
    try {
      const got = await Promise.any(
        holders.map((s) =>
          s.request(buildId, index, AbortSignal.any([signal, race.signal])).then(
            (bytes) => ({ bytes, from: s.id }),
            (err) => {
              if (err instanceof PeerRequestFailed && err.code === "timeout")
                this.#timedOut(s, piece);
              throw err;
            },
          ),
        ),
      );
      if (got.bytes.length !== piece.size) {
        this.reportBad(piece, got.from, `${got.bytes.length} bytes, expected ${piece.size}`);
        return null;
      }
      await (this.#o.downloadLimit ?? UNLIMITED).take(got.bytes.length, signal);
      this.counts.peer++;
      return got;
    } catch {
      signal.throwIfAborted(); // else every holder failed (timeout, choke, gone)
      return null;
    } finally {
      race.abort();
    }
  }

  #timedOut(session: PeerSession, piece: PieceRequest): void {
    const ms = this.#o.requestTimeoutMs ?? 10_000;
    const inARow = session.timeoutsInARow;
    this.#o.logger.log("warn", "peer:timeout", {
      peer: session.id,
      digest: piece.digest,
      ms,
      in_a_row: inARow,
    });
    if (inARow < (this.#o.maxTimeoutsInARow ?? 3) || session.closed) return;
    const retryIn = this.#o.dropForMs ?? 60_000;
    this.#dropped.set(session.id, Date.now() + retryIn);
    session.close(`${inARow} requests in a row timed out`);
    this.#o.logger.log("warn", "peer:dropped", {
      peer: session.id,
      reason: `${inARow} requests in a row timed out after ${ms} ms`,
      retry_in_ms: retryIn,
    });
  }

  /** Banned for good, or dropped a while ago. */
  #shunned(machineId: string): boolean {
    if (this.#banned.has(machineId)) return true;
    const until = this.#dropped.get(machineId);
    if (until === undefined) return false;
    if (Date.now() < until) return true;
    this.#dropped.delete(machineId);
    return false;
  }

  reportBad(piece: PieceRequest, from: string, reason: string): void {
    const session = this.#sessions.get(from);
    if (!session) {
      this.#o.relay.reportBad?.(piece, from, reason);
      return;
    }
    this.#banned.add(from);
    this.counts.banned++;
    session.close(`banned: ${reason}`);
    this.#o.logger.log("warn", "peer:banned", { peer: from, digest: piece.digest, reason });
    this.#o.sendToRelay(
      JSON.stringify({ type: "peer_bad", machine_id: from, digest: piece.digest, reason }),
    );
  }

  #attach(socket: WebSocket, machineId: string): void {
    socket.binaryType = "arraybuffer";
    const session = new PeerSession({
      id: machineId,
      wire: {
        send: (frame) => socket.send(frame),
        close: (reason) => socket.close(1000, reason.slice(0, 100)),
      },
      serve: async (build, index) => {
        if (this.#o.stallUploads) return null; // the requester's timeout runs out
        const bytes = await this.builds.read(build, index);
        if (bytes && this.#o.corruptUploads) bytes[0]! ^= 0xff;
        return bytes;
      },
      uploadSlots: this.#slots,
      uploadLimit: this.#o.uploadLimit ?? UNLIMITED,
      ...(this.#o.requestTimeoutMs === undefined
        ? {}
        : { requestTimeoutMs: this.#o.requestTimeoutMs }),
      ...(this.#o.maxOutstanding === undefined ? {} : { maxOutstanding: this.#o.maxOutstanding }),
      onClose: (s) => {
        if (this.#sessions.get(s.id) === s) this.#sessions.delete(s.id);
      },
    });
    const prior = this.#sessions.get(machineId);
    if (prior) {
      socket.close(1000, "already connected");
      return;
    }
    this.#sessions.set(machineId, session);
    socket.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) session.receive(new Uint8Array(e.data));
      else session.close("text frame");
    };
    socket.onclose = () => session.close("socket closed");
    socket.onerror = () => {};
    const sendHaves = () => {
      for (const b of this.builds.all()) session.sendHave(b.buildId, b.sizes.length, b.done);
    };
    if (socket.readyState === WebSocket.OPEN) sendHaves();
    else socket.onopen = sendHaves;
  }

  /** Sessions that take requests, fewest outstanding first (ties at random; `first` first). */
  #leastBusy(first?: string): PeerSession[] {
    return [...this.#sessions.values()]
      .filter((s) => s.available)
      .map((s) => ({ s, order: s.id === first ? -1 : s.outstanding + Math.random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ s }) => s);
  }

  #holders(buildId: number, index: number): number {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.has(buildId, index)) n++;
    return n;
  }

  /** Tells peers what this agent holds now, at most every 100 ms. */
  #scheduleHave(): void {
    this.#haveFlush ??= setTimeout(() => {
      this.#haveFlush = undefined;
      for (const b of this.builds.all()) {
        if (!b.active) continue;
        for (const s of this.#sessions.values()) s.sendHave(b.buildId, b.sizes.length, b.done);
      }
    }, 100);
  }

  #report(all: boolean): void {
    if (!this.enabled) return;
    for (const b of this.builds.all()) {
      if (b.active || all) {
        // Peers are asked for only while there is room for more and a download to use them.
        const want = b.active && this.#sessions.size < (this.#o.maxPeers ?? 12);
        this.#o.sendToRelay(encodeHave(b.buildId, b.sizes.length, b.done, want));
      }
    }
  }
}
