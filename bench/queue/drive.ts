// The worker loop every table shares: N concurrent workers, each claim → complete until the
// queue is empty or the time is up. Only the claim and complete calls differ between tables.

import { RunRecord } from "./stats.ts";

export interface Claim {
  readonly id: number;
  readonly attempt: number;
}

export interface QueueWorker<C extends Claim> {
  /** The next job, or undefined when the queue is empty. Throws on a failed attempt. */
  claim(): Promise<C | undefined>;
  /** True when accepted; false when refused (the lease moved on). */
  complete(claimed: C): Promise<boolean>;
}

/**
 * Runs `workers` concurrently until each sees an empty queue or `seconds` pass. A worker
 * finishes the cycle it is in before it stops, so nothing is left half-done by the timer.
 * Claim latency runs from the first attempt to the successful one: a worker that has to
 * retry after a conflict waits that long for its job.
 */
export async function drive<C extends Claim>(
  workers: readonly QueueWorker<C>[],
  seconds: number,
): Promise<RunRecord> {
  const record = new RunRecord();
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    workers.map(async (worker) => {
      let firstAttempt: number | undefined;
      while (performance.now() < deadline) {
        firstAttempt ??= performance.now();
        let claimed: C | undefined;
        try {
          claimed = await worker.claim();
        } catch (error) {
          record.failed(error);
          continue;
        }
        if (claimed === undefined) return;
        record.claimed(claimed.id, claimed.attempt, performance.now() - firstAttempt);
        firstAttempt = undefined;
        const completing = performance.now();
        try {
          const accepted = await worker.complete(claimed);
          record.completeMs.push(performance.now() - completing);
          if (accepted) record.completes++;
          else record.refusedCompletes++;
        } catch (error) {
          record.failed(error);
        }
      }
    }),
  );
  record.endedAt = performance.now();
  return record;
}
