// SQLite's own busy handler sleeps inside the engine call, which here would block the whole
// event loop, including the very request that would release the lock. So connections run
// with busy_timeout = 0 and the wait happens here, between attempts, without blocking.

import { SqlError } from "./errors.ts";

export interface BusyWaitOptions {
  /** How long to keep retrying before SQLITE_BUSY reaches the client. */
  readonly timeoutMs: number;
  /** Whether a busy error may be retried; default: plain SQLITE_BUSY only. */
  readonly retryable?: (error: SqlError) => boolean;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const FIRST_DELAY_MS = 1;
// Short enough that a waiting writer notices a commit quickly, long enough not to spin.
const MAX_DELAY_MS = 25;

const isPlainBusy = (error: SqlError) => error.isBusy;

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `operation` until it stops failing with plain SQLITE_BUSY or the timeout passes.
 * Retrying is safe because a statement that could not take its lock has changed nothing:
 * callers pass one statement per operation, never a multi-statement script.
 */
export async function retryWhileBusy<T>(operation: () => T, options: BusyWaitOptions): Promise<T> {
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? realSleep;
  const started = now();
  const deadline = started + options.timeoutMs;
  let delay = FIRST_DELAY_MS;
  for (;;) {
    try {
      return operation();
    } catch (error) {
      if (!(error instanceof SqlError && (options.retryable ?? isPlainBusy)(error))) throw error;
      if (now() + delay > deadline) {
        const waited = Math.round(now() - started);
        throw new SqlError(
          error.code,
          error.extendedCode,
          `${error.message} (gave up after waiting ${waited} ms for the lock)`,
          { cause: error },
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
}
