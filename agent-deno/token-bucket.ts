/**
 * A token bucket for the agent's upload and download rate limits (bytes per second). `take`
 * lets a piece through at once and puts the bucket in debt, so a piece larger than the burst
 * still passes; later callers wait until the debt is paid. Waiters are served in order.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;
  #queue: Promise<void> = Promise.resolve();

  /** `rate` bytes per second; `burst` defaults to a quarter second's worth. */
  constructor(rate: number, o: { burst?: number; now?: () => number } = {}) {
    if (!(rate > 0)) throw new RangeError(`rate must be positive, got ${rate}`);
    this.#rate = rate;
    this.#burst = o.burst ?? rate / 4;
    this.#now = o.now ?? (() => performance.now());
    this.#tokens = this.#burst;
    this.#at = this.#now();
  }

  /** Resolves once `bytes` may pass. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(() => this.#wait(bytes, signal));
    this.#queue = turn.catch(() => {});
    return turn;
  }

  /** Milliseconds until the bucket is out of debt (0 when it is not). */
  #refill(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.#rate) * 1000;
  }

  async #wait(bytes: number, signal?: AbortSignal): Promise<void> {
    for (let ms = this.#refill(); ms > 0; ms = this.#refill()) {
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(ms)));
    }
    this.#tokens -= bytes;
  }
}

/** No limit. */
export const UNLIMITED = { take: (_bytes: number, _signal?: AbortSignal) => Promise.resolve() };
export type RateLimit = Pick<TokenBucket, "take">;
