// Hrana-over-HTTP streams and their batons. Each stream owns one SQLite connection, so a
// transaction begun in one pipeline request is still open in the next. A stream closed with no
// transaction open hands its connection to the next new stream (up to `poolSize` are kept):
// a client like @libsql/client/web opens and closes a stream for every statement or batch, and
// a fresh connection re-reads the schema and prepares every statement anew each time. A baton is good for
// exactly one request: taking it retires it, which also keeps two requests from ever
// running on one connection at once. Idle streams expire, closing the connection (and so
// rolling back whatever transaction was left open).

import type { OpenConnection, SqlConnection } from "./connection.ts";
import { HranaHttpError } from "./errors.ts";
import type { StreamState } from "./execute.ts";

export interface Stream extends StreamState {
  readonly id: number;
}

interface StreamEntry extends Stream {
  /** The baton that will hand this stream to the next request, while it is idle. */
  baton: string | null;
  lastBaton: string | null;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type RetiredReason = "used" | "expired" | "closed";

export interface StreamRegistryOptions {
  readonly openConnection: OpenConnection;
  readonly idleTimeoutMs: number;
  /** Open streams (idle or busy) allowed at once; each holds a SQLite connection. */
  readonly maxStreams: number;
  /** Idle connections kept for new streams. Default 16. */
  readonly poolSize?: number;
  readonly onExpired?: (event: { streamId: number; hadTransaction: boolean }) => void;
}

// Enough to explain "expired" or "already used" for any baton a client could still hold,
// without growing forever.
const RETIRED_BATONS_KEPT = 10_000;

export class StreamRegistry {
  readonly #options: StreamRegistryOptions;
  readonly #idle = new Map<string, StreamEntry>();
  readonly #live = new Set<StreamEntry>();
  readonly #retired = new Map<string, RetiredReason>();
  readonly #pool: SqlConnection[] = [];
  #nextId = 1;

  constructor(options: StreamRegistryOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#live.size;
  }

  /** Hands a stream to one request: a new one for a null baton, else the baton's stream. */
  acquire(baton: string | null): Stream {
    if (baton === null) return this.#open();
    const entry = this.#idle.get(baton);
    if (entry === undefined) throw this.#batonError(baton);
    this.#idle.delete(baton);
    this.#retire(baton, "used");
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.baton = null;
    return entry;
  }

  /** Takes the stream back after a request; returns the baton for the next request. */
  release(stream: Stream): string {
    const entry = this.#entry(stream);
    const baton = `s${entry.id}.${crypto.randomUUID().replaceAll("-", "")}`;
    entry.baton = baton;
    entry.lastBaton = baton;
    this.#idle.set(baton, entry);
    entry.timer = setTimeout(() => this.#expire(entry), this.#options.idleTimeoutMs);
    return baton;
  }

  /**
   * Ends a stream. Its connection goes back to the pool when no transaction is open on it,
   * unless `reusable` is false (a request failed in a way that leaves its state unknown).
   */
  close(stream: Stream, reusable = true): void {
    const entry = this.#entry(stream);
    clearTimeout(entry.timer);
    if (entry.baton !== null) this.#idle.delete(entry.baton);
    if (entry.lastBaton !== null) this.#retire(entry.lastBaton, "closed");
    entry.baton = null;
    this.#live.delete(entry);
    const pooled =
      reusable && entry.conn.isAutocommit && this.#pool.length < (this.#options.poolSize ?? 16);
    if (pooled) this.#pool.push(entry.conn);
    else entry.conn.close();
  }

  /** Closes the idle stream behind `baton`, if any (after a request we could not parse). */
  discard(baton: string): void {
    const entry = this.#idle.get(baton);
    if (entry !== undefined) this.close(entry);
  }

  closeAll(): void {
    for (const entry of [...this.#live]) this.close(entry, false);
    for (const conn of this.#pool.splice(0)) conn.close();
  }

  #open(): StreamEntry {
    if (this.#live.size >= this.#options.maxStreams) {
      throw new HranaHttpError(
        "TOO_MANY_STREAMS",
        `${this.#live.size} streams are open, the limit; close streams (a "close" request) ` +
          "or wait for idle ones to expire",
      );
    }
    const entry: StreamEntry = {
      id: this.#nextId++,
      conn: this.#pool.pop() ?? this.#options.openConnection(),
      sqlTexts: new Map(),
      baton: null,
      lastBaton: null,
      timer: undefined,
    };
    this.#live.add(entry);
    return entry;
  }

  #expire(entry: StreamEntry): void {
    const hadTransaction = !entry.conn.isAutocommit;
    if (entry.baton !== null) {
      this.#idle.delete(entry.baton);
      this.#retire(entry.baton, "expired");
    }
    entry.baton = null;
    entry.timer = undefined;
    this.#live.delete(entry);
    entry.conn.close();
    this.#options.onExpired?.({ streamId: entry.id, hadTransaction });
  }

  #entry(stream: Stream): StreamEntry {
    const entry = stream as StreamEntry;
    if (!this.#live.has(entry)) throw new Error(`Stream ${stream.id} is not open`);
    return entry;
  }

  #retire(baton: string, reason: RetiredReason): void {
    this.#retired.delete(baton);
    this.#retired.set(baton, reason);
    if (this.#retired.size > RETIRED_BATONS_KEPT) {
      const oldest = this.#retired.keys().next();
      if (!oldest.done) this.#retired.delete(oldest.value);
    }
  }

  #batonError(baton: string): HranaHttpError {
    switch (this.#retired.get(baton)) {
      case "used":
        return new HranaHttpError(
          "BATON_REUSED",
          "This baton was already used: each response carries a new baton, and only that one " +
            "continues the stream (requests on a stream must be sent one after another)",
        );
      case "expired":
        return new HranaHttpError(
          "STREAM_EXPIRED",
          `The stream expired after ${this.#options.idleTimeoutMs} ms without requests; its ` +
            "connection was closed and any open transaction rolled back. Start a new stream " +
            "(baton null)",
        );
      case "closed":
        return new HranaHttpError(
          "STREAM_CLOSED",
          "The stream was closed; start a new stream (baton null)",
        );
      case undefined:
        return new HranaHttpError(
          "BATON_INVALID",
          "Unknown baton: it was not issued by this server (or the server restarted); start a " +
            "new stream (baton null)",
        );
    }
  }
}
