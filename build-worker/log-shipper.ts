/**
 * Ships one attempt's log lines to the control plane in numbered batches (seq 0, 1, 2, …), one
 * request at a time so they arrive in order. A batch is sent when it is full or `flushMs` after
 * its first line; `write` waits while more than `maxPendingBytes` are unsent, which slows a
 * chatty build down to what the API takes instead of holding its output in memory.
 */
import { LOG_LIMITS, LogBatcher, type LogLimits } from "./log-batches.ts";

export interface LogShipperOptions {
  /** Sends one batch (the API call, with its own retries). */
  send: (seq: number, lines: readonly string[]) => Promise<void>;
  /**
   * Told when a batch could not be sent. Return "stop" to send nothing more (the lease is lost),
   * "drop" to give that batch up and go on with the next seq.
   */
  onError: (err: unknown, seq: number, lines: readonly string[]) => "stop" | "drop";
  /** Default 500 ms. */
  flushMs?: number;
  /** Default 4 MB. */
  maxPendingBytes?: number;
  limits?: LogLimits;
}

export class LogShipper {
  readonly #opts: Required<LogShipperOptions>;
  readonly #batcher: LogBatcher;
  #seq = 0;
  #pump: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing = false;
  #stopped = false;

  constructor(options: LogShipperOptions) {
    this.#opts = {
      flushMs: 500,
      maxPendingBytes: 4_000_000,
      limits: LOG_LIMITS,
      ...options,
    };
    this.#batcher = new LogBatcher(this.#opts.limits);
  }

  /** The next seq to be used: how many batches were sent or given up. */
  get seq(): number {
    return this.#seq;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Queues `line`; resolves once there is room for more. */
  async write(line: string): Promise<void> {
    if (this.#stopped) return;
    this.#batcher.add(line);
    if (this.#batcher.hasFullBatch) void this.#run();
    else this.#timer ??= setTimeout(() => this.#flushSoon(), this.#opts.flushMs);
    while (!this.#stopped && this.#batcher.pendingBytes > this.#opts.maxPendingBytes) {
      await this.#run();
    }
  }

  /** Sends everything written so far. */
  async flush(): Promise<void> {
    this.#clearTimer();
    while (!this.#stopped && !this.#batcher.isEmpty) {
      this.#flushing = true;
      await this.#run();
    }
  }

  /** Sends nothing more; what is queued is dropped. */
  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
  }

  #flushSoon(): void {
    this.#timer = undefined;
    this.#flushing = true;
    void this.#run();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Runs the single sender until nothing sendable is left; concurrent callers share it. */
  #run(): Promise<void> {
    if (!this.#pump) {
      const pump = this.#drain();
      this.#pump = pump;
      // Cleared from a callback, never inside #drain: a drain that finds nothing to send ends
      // before this assignment, and clearing there would leave a settled pump in place.
      const clear = () => {
        if (this.#pump !== pump) return;
        this.#pump = null;
        // A batch filled up while this pump was ending: nothing else would send it.
        if (!this.#stopped && this.#batcher.hasFullBatch) void this.#run();
      };
      pump.then(clear, clear);
    }
    return this.#pump;
  }

  async #drain(): Promise<void> {
    while (!this.#stopped) {
      const lines = this.#batcher.take(this.#flushing);
      if (!lines) break;
      await this.#sendOne(lines);
    }
    this.#flushing = false;
  }

  async #sendOne(lines: string[]): Promise<void> {
    const seq = this.#seq++;
    try {
      await this.#opts.send(seq, lines);
    } catch (err) {
      if (this.#opts.onError(err, seq, lines) === "stop") this.stop();
    }
  }
}
