/** Retries with exponential backoff, for calls whose failure may be transient. */

export interface RetryOptions {
  /** Calls in all, the first included. Default 6. */
  attempts?: number;
  /** Delay before the first retry; doubles per retry. Default 500 ms. */
  baseMs?: number;
  /** Longest delay between two calls. Default 10 s. */
  maxMs?: number;
  /** Whether `err` is worth another call. Default: everything is. */
  retryable?: (err: unknown) => boolean;
  /** Told before each retry (for a log line). */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Stops the waiting: the pending delay rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Random in [0, 1) for jitter. Default Math.random; tests pass a constant. */
  random?: () => number;
  /** Default: a timer that the signal cancels. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** The delay before retry number `retry` (1-based): base·2^(retry-1), capped, with ±25% jitter. */
export function backoffDelay(
  retry: number,
  opts: { baseMs: number; maxMs: number; random: () => number },
): number {
  const raw = Math.min(opts.maxMs, opts.baseMs * 2 ** (retry - 1));
  return Math.round(raw * (0.75 + 0.5 * opts.random()));
}

/**
 * Calls `fn` until it resolves, it throws something not `retryable`, or `attempts` calls have
 * failed (then the last error is thrown). `fn` gets the 1-based attempt number.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 6;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`attempts must be a positive integer, got ${attempts}`);
  }
  const timing = {
    baseMs: options.baseMs ?? 500,
    maxMs: options.maxMs ?? 10_000,
    random: options.random ?? Math.random,
  };
  const sleep = options.sleep ?? abortableSleep;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || options.signal?.aborted) throw error;
      if (options.retryable && !options.retryable(error)) throw error;
      const delayMs = backoffDelay(attempt, timing);
      options.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs, options.signal);
    }
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
