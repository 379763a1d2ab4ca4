/**
 * Heartbeats beside a whole build attempt. A refusal (409: lease lost, build canceled, build
 * timed out) ends the attempt at once through `onLost`; a failed call is tried again sooner,
 * since the lease keeps running meanwhile.
 */
import { isLeaseRefusal } from "./api.ts";
import { abortableSleep } from "./retry.ts";

export interface HeartbeatOptions {
  intervalMs: number;
  beat: (signal: AbortSignal) => Promise<void>;
  onLost: (refusal: { code: string; message: string }) => void;
  onError: (err: unknown) => void;
  /** After a failed beat, the next comes after min(this, intervalMs). Default 2 s. */
  retryMs?: number;
}

export interface Heartbeat {
  /** Stops beating; resolves once no beat is in flight. */
  stop(): Promise<void>;
}

export function startHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const stopper = new AbortController();
  const retryMs = Math.min(opts.retryMs ?? 2_000, opts.intervalMs);
  const loop = (async () => {
    let wait = opts.intervalMs;
    while (!stopper.signal.aborted) {
      try {
        await abortableSleep(wait, stopper.signal);
        await opts.beat(stopper.signal);
        wait = opts.intervalMs;
      } catch (err) {
        if (stopper.signal.aborted) return;
        if (isLeaseRefusal(err)) {
          opts.onLost({ code: err.code, message: err.message });
          return;
        }
        opts.onError(err);
        wait = retryMs;
      }
    }
  })();
  return {
    async stop() {
      stopper.abort();
      await loop;
    },
  };
}
