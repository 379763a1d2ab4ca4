/**
 * One agent ↔ agent connection, both directions, over any transport that moves binary frames
 * (a WebSocket in the agent, a pipe in the tests). Downloading: `request` sends a request and
 * resolves with the piece's bytes (unverified: the mesh verifies), with a per-request timeout
 * and a bound on requests outstanding; choke or close fail what is outstanding with
 * PeerRequestFailed. Uploading: requests wait for one of the agent's upload slots and its
 * upload rate limit; a peer that queues too much is choked until its queue drains; `cancel`
 * drops a queued request. A piece is answered only while its request is pending. A malformed
 * frame closes the session.
 */
import {
  decodePeerFrame,
  encodePeerMessage,
  type PeerMessage,
  PeerWireError,
} from "../protocol/peer-wire.ts";
import type { RateLimit } from "./token-bucket.ts";

export interface PeerWire {
  send(frame: Uint8Array): void;
  close(reason: string): void;
}

/** Shared by every session of the agent: how many pieces are being sent at once. */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(count: number) {
    this.#free = count;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

export interface PeerSessionOptions {
  /** The peer's machine id. */
  id: string;
  wire: PeerWire;
  /** Verified bytes of a chunk this agent holds, or null. */
  serve: (buildId: number, index: number) => Promise<Uint8Array | null>;
  uploadSlots: Slots;
  uploadLimit: RateLimit;
  /** Requests this side keeps outstanding at the peer. Default 4. */
  maxOutstanding?: number;
  /** Per request. Default 10 s. */
  requestTimeoutMs?: number;
  /** Requests of the peer queued here before it is choked. Default 16. */
  maxQueued?: number;
  onHave?: (session: PeerSession, buildId: number) => void;
  onClose?: (session: PeerSession, reason: string) => void;
}

export type PeerFailure = "choked" | "closed" | "timeout" | "busy";

export class PeerRequestFailed extends Error {
  override readonly name = "PeerRequestFailed";
  constructor(
    readonly code: PeerFailure,
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  resolve: (bytes: Uint8Array) => void;
  reject: (err: PeerRequestFailed) => void;
  timer: ReturnType<typeof setTimeout>;
}

const key = (buildId: number, index: number) => `${buildId}:${index}`;

export class PeerSession {
  readonly id: string;
  /** What the peer holds, per build (its last `have`). */
  readonly haves = new Map<number, Uint8Array>();
  /** The peer refuses our requests until it unchokes us. */
  chokedByPeer = false;
  closed = false;
  /** Requests that timed out since the peer last sent a piece. */
  timeoutsInARow = 0;
  readonly #o: PeerSessionOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #queued = new Set<string>();
  #chokingPeer = false;

  constructor(options: PeerSessionOptions) {
    this.#o = options;
    this.id = options.id;
  }

  get outstanding(): number {
    return this.#pending.size;
  }

  get available(): boolean {
    return !this.closed && !this.chokedByPeer && this.#pending.size < (this.#o.maxOutstanding ?? 4);
  }

  has(buildId: number, index: number): boolean {
    const bits = this.haves.get(buildId);
    return bits !== undefined && ((bits[index >> 3] ?? 0) & (1 << (index & 7))) !== 0;
  }

  sendHave(buildId: number, chunks: number, bitfield: Uint8Array): void {
    this.#send({ type: "have", build_id: buildId, chunks, bitfield });
  }

  /** The bytes the peer sends for the chunk (unverified). */
  request(buildId: number, index: number, signal: AbortSignal): Promise<Uint8Array> {
    if (!this.available) {
      const code = this.closed ? "closed" : this.chokedByPeer ? "choked" : "busy";
      return Promise.reject(new PeerRequestFailed(code, `peer ${this.id}: ${code}`));
    }
    const k = key(buildId, index);
    if (this.#pending.has(k)) return Promise.reject(new PeerRequestFailed("busy", "already asked"));
    return new Promise<Uint8Array>((resolve, reject) => {
      const ms = this.#o.requestTimeoutMs ?? 10_000;
      const onAbort = () => this.#fail(k, "closed", "aborted", true);
      const timer = setTimeout(() => this.#fail(k, "timeout", `no piece in ${ms} ms`, true), ms);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(k, {
        resolve: (bytes) => {
          signal.removeEventListener("abort", onAbort);
          resolve(bytes);
        },
        reject: (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
        timer,
      });
      this.#send({ type: "request", build_id: buildId, index });
    });
  }

  /** A frame from the peer. */
  receive(frame: Uint8Array): void {
    let message: PeerMessage;
    try {
      const decoded = decodePeerFrame(frame);
      if (decoded.kind === "unknown") return; // a newer peer's kind: ignore
      message = decoded.message;
    } catch (err) {
      if (!(err instanceof PeerWireError)) throw err;
      this.close(err.message);
      return;
    }
    switch (message.type) {
      case "have":
        this.haves.set(message.build_id, message.bitfield);
        this.#o.onHave?.(this, message.build_id);
        return;
      case "request":
        void this.#serve(message.build_id, message.index);
        return;
      case "cancel":
        this.#queued.delete(key(message.build_id, message.index));
        return;
      case "piece": {
        const k = key(message.build_id, message.index);
        const pending = this.#pending.get(k);
        if (!pending) return; // cancelled or timed out: not an error, just late
        clearTimeout(pending.timer);
        this.#pending.delete(k);
        this.timeoutsInARow = 0;
        pending.resolve(message.bytes);
        return;
      }
      case "choke":
        this.chokedByPeer = true;
        for (const k of [...this.#pending.keys()]) this.#fail(k, "choked", "choked", false);
        return;
      case "unchoke":
        this.chokedByPeer = false;
        return;
    }
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const k of [...this.#pending.keys()]) this.#fail(k, "closed", reason, false);
    this.#queued.clear();
    try {
      this.#o.wire.close(reason);
    } catch {
      // already gone
    }
    this.#o.onClose?.(this, reason);
  }

  async #serve(buildId: number, index: number): Promise<void> {
    const k = key(buildId, index);
    if (this.#chokingPeer) return;
    if (this.#queued.size >= (this.#o.maxQueued ?? 16)) {
      this.#chokingPeer = true;
      this.#queued.clear();
      this.#send({ type: "choke" });
      return;
    }
    this.#queued.add(k);
    const release = await this.#o.uploadSlots.acquire();
    try {
      if (!this.#queued.has(k) || this.closed) return; // cancelled meanwhile
      const bytes = await this.#o.serve(buildId, index);
      if (!bytes || !this.#queued.has(k) || this.closed) return; // peer's request times out
      await this.#o.uploadLimit.take(bytes.length);
      this.#send({ type: "piece", build_id: buildId, index, bytes });
    } finally {
      this.#queued.delete(k);
      release();
      if (this.#chokingPeer && this.#queued.size === 0 && !this.closed) {
        this.#chokingPeer = false;
        this.#send({ type: "unchoke" });
      }
    }
  }

  #fail(k: string, code: PeerFailure, reason: string, cancel: boolean): void {
    const pending = this.#pending.get(k);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.#pending.delete(k);
    if (code === "timeout") this.timeoutsInARow++;
    if (cancel && !this.closed) {
      const [build, index] = k.split(":").map(Number) as [number, number];
      this.#send({ type: "cancel", build_id: build, index });
    }
    pending.reject(new PeerRequestFailed(code, `peer ${this.id}: ${reason}`));
  }

  #send(message: PeerMessage): void {
    if (this.closed) return;
    try {
      this.#o.wire.send(encodePeerMessage(message));
    } catch (err) {
      this.close(`send failed: ${err instanceof Error ? err.message : err}`);
    }
  }
}
