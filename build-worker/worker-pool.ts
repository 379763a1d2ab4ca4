/**
 * The worker's slots: each claims a build (long-polling), runs it to its end, and claims the
 * next, until the worker stops claiming. A slot whose claim fails backs off (up to 30 s).
 */
import type { Claimed, ControlPlane } from "./api.ts";
import { errorText, type Logger } from "./log.ts";
import type { Outcome } from "./outcome.ts";
import { abortableSleep, backoffDelay } from "./retry.ts";

export interface PoolOptions {
  api: ControlPlane;
  logger: Logger;
  workerId: string;
  slots: number;
  claimWaitS: number;
  /** Runs one claimed build to its end (build-attempt.ts). */
  runAttempt: (claim: Claimed, opts: { slot: number; shutdown: AbortSignal }) => Promise<Outcome>;
  /** Aborted: claim nothing more (running builds go on; a claim under way is waited for). */
  stopClaiming: AbortSignal;
  /** Aborted: stop running builds now (after the shutdown grace period). */
  abortBuilds: AbortSignal;
}

export class WorkerPool {
  #running = 0;

  constructor(private readonly opts: PoolOptions) {}

  /** Builds under way. */
  get running(): number {
    return this.#running;
  }

  /** Resolves once claiming has stopped and every slot's build has ended. */
  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.slots }, (_, i) => this.#slot(i)));
  }

  async #slot(slot: number): Promise<void> {
    const { api, logger, stopClaiming, abortBuilds } = this.opts;
    let failures = 0;
    while (!stopClaiming.aborted) {
      let claim: Claimed | null;
      try {
        // Not cut short by stopClaiming: the control plane goes on long-polling for a caller
        // that hung up, and a build it then claims would sit unrun until its lease expires.
        // The call ends within claimWaitS; what it brings back during a shutdown is handed back.
        claim = await api.claim(this.opts.workerId, this.opts.claimWaitS, abortBuilds);
        failures = 0;
      } catch (err) {
        if (abortBuilds.aborted) break;
        failures++;
        const delay = backoffDelay(failures, { baseMs: 1_000, maxMs: 30_000, random: Math.random });
        logger.log("warn", "claim:failed", { slot, error: errorText(err), retry_in_ms: delay });
        await abortableSleep(delay, stopClaiming).catch(() => {});
        continue;
      }
      if (!claim) continue;
      if (stopClaiming.aborted) {
        await this.#handBack(claim);
        break;
      }
      this.#running++;
      try {
        await this.opts.runAttempt(claim, { slot, shutdown: abortBuilds });
      } finally {
        this.#running--;
      }
    }
  }

  /** Gives a build claimed during shutdown straight back (requeued as an infrastructure failure). */
  async #handBack(claim: Claimed): Promise<void> {
    const { build } = claim;
    const message = "worker shutting down";
    try {
      await this.opts.api.fail(build.id, {
        leaseToken: claim.lease_token,
        reason: "infrastructure",
        message,
      });
      this.opts.logger.log("info", "build:handed-back", {
        build_id: build.id,
        attempt: build.attempt,
        message,
      });
    } catch (err) {
      this.opts.logger.log("error", "build:report-failed", {
        build_id: build.id,
        error: errorText(err),
      });
    }
  }
}
