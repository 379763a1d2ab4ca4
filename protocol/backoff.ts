/** Jittered exponential backoff for reconnect loops, and a sleep that an AbortSignal ends. */

export interface BackoffOptions {
  /** First delay. Default 500 ms. */
  baseMs?: number;
  /** Longest delay. Default 30 s. */
  maxMs?: number;
  /** Random in [0, 1). Default Math.random. */
  random?: () => number;
}

/**
 * Delays for successive failures: base·2^n capped at max, "full jitter" in [d/2, d) so that
 * many relays or agents cut off at once do not come back in lockstep. `reset()` after success.
 */
export class Backoff {
  #failures = 0;
  readonly #base: number;
  readonly #max: number;
  readonly #random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.#base = options.baseMs ?? 500;
    this.#max = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const raw = Math.min(this.#max, this.#base * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return Math.round(raw / 2 + (raw / 2) * this.#random());
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts (resolves, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
