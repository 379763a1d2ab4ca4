/**
 * One app on one machine, converging to its goal (DESIGN section 8): for a verified goal, fetch
 * and verify the manifest, assemble the file (unless the release is already kept), install it,
 * switch `current`, restart the app and check its health; on failed health switch back to the
 * previous release, restart that, and report `failed` with the reason. Work is serial per app; a
 * newer goal supersedes one still downloading (what was verified stays on disk for later).
 */

import { Backoff, sleep } from "../protocol/backoff.ts";
import { type GoalDocument, targetOf } from "../protocol/goal.ts";
import type { AppState, AppStatus } from "../protocol/relay-messages.ts";
import type { AppliedGoal, FailedGoal } from "./agent-state.ts";
import { ReleaseWatch } from "./app-watch.ts";
import { errorText } from "./log.ts";
import { fetchRelease, launchRelease, probeRelease, type ReleaseDeps } from "./release-steps.ts";
import { stopOrphan } from "./supervisor.ts";

export interface ConvergerDeps extends ReleaseDeps {
  machineId: string;
  keepReleases: number;
  onStatus: (status: AppStatus) => void;
  /** The app's stdout and stderr (a crash's detail quotes its last lines). */
  logFile: string;
  /** After a crash, how long a process must stay healthy before the machine is healthy again. */
  settleMs: number;
}

class Superseded extends Error {
  override readonly name = "Superseded";
}

export class AppConverger {
  readonly #d: ConvergerDeps;
  #status: AppStatus;
  #applied: AppliedGoal | null = null;
  #failed: FailedGoal | null = null;
  /** The newest generation handled (applied, or failed for good). */
  #handled = 0;
  #target: GoalDocument | null = null;
  #chain: Promise<void> = Promise.resolve();
  /** Aborts the work in progress when a newer goal supersedes it (download phase only). */
  #downloadAbort: AbortController | null = null;
  #wake: AbortController = new AbortController();
  readonly #stopped = new AbortController();
  /** The running release after its health gate (or down since its start): see app-watch.ts. */
  #watch: ReleaseWatch | null = null;

  constructor(deps: ConvergerDeps) {
    this.#d = deps;
    this.#status = {
      app: deps.app,
      build_id: null,
      generation: null,
      state: "pending",
      detail: null,
      running_build_id: null,
      progress: null,
    };
  }

  get status(): AppStatus {
    return this.#status;
  }

  /**
   * At agent start, before any goal: stop an orphan a killed agent left, and load what was
   * applied and what failed. Fast; `resume()` then starts the app.
   */
  async init(): Promise<void> {
    const d = this.#d;
    await d.releases.init();
    const orphan = await d.state.process(d.app);
    if (orphan && (await stopOrphan(orphan)))
      d.logger.log("warn", "app:orphan-killed", { app: d.app, pid: orphan.pid });
    await d.state.setProcess(d.app, null);
    this.#applied = await d.state.applied(d.app);
    this.#failed = await d.state.failed(d.app);
    this.#handled = Math.max(this.#applied?.generation ?? 0, this.#failed?.generation ?? 0);
  }

  /** Runs the applied release again (no upstream needed), then reports what it runs. */
  resume(): Promise<void> {
    return this.#enqueue(() => this.#resume());
  }

  /** A verified goal for this app. */
  offer(goal: GoalDocument): Promise<void> {
    if (this.#target && goal.generation <= this.#target.generation) return this.#chain;
    if (goal.generation <= this.#handled) return this.#chain;
    this.#target = goal;
    this.#d.logger.log("info", "goal:accepted", {
      app: this.#d.app,
      generation: goal.generation,
      build_id: targetOf(goal, this.#d.machineId).build_id,
    });
    this.#downloadAbort?.abort(new Superseded(`generation ${goal.generation} arrived`));
    this.#wake.abort();
    return this.#enqueue(() => this.#drive());
  }

  /** The applied generation (goals older than it are refused). */
  get appliedGeneration(): number | undefined {
    return this.#applied?.generation;
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    this.#downloadAbort?.abort(new Superseded("agent stopping"));
    this.#wake.abort();
    await this.#chain;
    this.#unwatch();
    await this.#d.supervisor.stop();
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(job).catch((err) => {
      if (this.#stopped.signal.aborted) return; // stopping interrupts work on purpose
      this.#d.logger.log("error", "deploy:error", {
        app: this.#d.app,
        build_id: this.#status.build_id ?? 0,
        error: errorText(err),
        retry_in_ms: 0,
      });
    });
    return this.#chain;
  }

  #report(state: AppState, fields: Partial<AppStatus> = {}): void {
    this.#status = {
      ...this.#status,
      state,
      detail: null,
      progress: null,
      ...fields,
      running_build_id: this.#d.supervisor.buildId,
      restarts: this.#d.supervisor.restarts,
    };
    this.#d.onStatus(this.#status);
  }

  /**
   * Watches the release that runs now: its crashes and recoveries become the app's state while
   * the app's status is about that build (a newer goal being downloaded is reported as such).
   */
  #watchRunning(run: AppliedGoal, buildId: number, failing?: string): void {
    this.#unwatch();
    const d = this.#d;
    this.#watch = new ReleaseWatch(
      {
        app: d.app,
        buildId,
        supervisor: d.supervisor,
        logger: d.logger,
        logFile: d.logFile,
        settleMs: d.settleMs,
        probe: (signal) => probeRelease(d, run, buildId, signal),
        report: (state, detail) => {
          if (this.#status.build_id !== buildId) return;
          if (this.#status.state !== "healthy" && this.#status.state !== "failed") return;
          this.#report(state, {
            build_id: this.#status.build_id,
            generation: this.#status.generation,
            detail,
          });
        },
      },
      failing,
    );
  }

  #unwatch(): void {
    this.#watch?.stop();
    this.#watch = null;
  }

  async #resume(): Promise<void> {
    const d = this.#d;
    const a = this.#applied;
    const failed = this.#failed;
    const lastFailed = failed && failed.generation > (a?.generation ?? 0) ? failed : null;
    const reportFailed = (f: FailedGoal) =>
      this.#report("failed", {
        build_id: f.build_id,
        generation: f.generation,
        detail: `health check failed: ${f.reason}`.slice(0, 1000),
      });
    if (!a || !(await d.releases.info(a.build_id))) {
      if (lastFailed) reportFailed(lastFailed);
      return;
    }
    // A crash between switching and a passed health check leaves `current` ahead: go back.
    if ((await d.releases.current()) !== a.build_id) await d.releases.switchTo(a.build_id);
    const base = { build_id: a.build_id, generation: a.generation };
    this.#report("installed", base);
    this.#unwatch();
    const health = await launchRelease(this.#d, a, a.build_id, this.#stopped.signal);
    if (lastFailed) reportFailed(lastFailed);
    else if (health.ok) this.#report("healthy", base);
    else this.#report("failed", { ...base, detail: health.reason.slice(0, 1000) });
    // Down at start: the supervisor keeps restarting it, and the watch says when it is back.
    if (d.supervisor.buildId === a.build_id)
      this.#watchRunning(a, a.build_id, health.ok ? undefined : health.reason.slice(0, 1000));
  }

  async #drive(): Promise<void> {
    const backoff = new Backoff({ baseMs: 1_000, maxMs: 30_000 });
    for (;;) {
      const goal = this.#target;
      if (!goal || goal.generation <= this.#handled || this.#stopped.signal.aborted) return;
      this.#wake = new AbortController();
      try {
        await this.#converge(goal);
        this.#handled = Math.max(this.#handled, goal.generation);
        backoff.reset();
      } catch (err) {
        if (this.#stopped.signal.aborted) return;
        if (this.#target !== goal) {
          this.#d.logger.log("info", "deploy:superseded", {
            app: this.#d.app,
            build_id: targetOf(goal, this.#d.machineId).build_id,
            by_generation: this.#target?.generation ?? 0,
          });
          continue;
        }
        const delay = backoff.next();
        const t = targetOf(goal, this.#d.machineId);
        this.#d.logger.log("warn", "deploy:error", {
          app: this.#d.app,
          build_id: t.build_id,
          error: errorText(err),
          retry_in_ms: delay,
        });
        this.#report(this.#status.state === "downloading" ? "downloading" : "pending", {
          build_id: t.build_id,
          generation: goal.generation,
          detail: `retrying in ${Math.round(delay / 1000)} s: ${errorText(err)}`.slice(0, 1000),
        });
        await sleep(delay, AbortSignal.any([this.#wake.signal, this.#stopped.signal]));
      }
    }
  }

  async #converge(goal: GoalDocument): Promise<void> {
    const d = this.#d;
    const t = targetOf(goal, d.machineId);
    const base = { build_id: t.build_id, generation: goal.generation };
    const applied = this.#applied;
    const next: AppliedGoal = {
      generation: goal.generation,
      deployment_id: goal.deployment_id,
      build_id: t.build_id,
      manifest_digest: t.manifest_digest,
      run_command: goal.run_command,
      health_check: goal.health_check,
    };
    if (applied && d.supervisor.buildId === t.build_id && sameRun(applied, next)) {
      await this.#apply(next); // a new generation for what already runs (e.g. a rollback to it)
      // What already runs is as healthy as its watch says: a crashed process stays failed.
      const watch = this.#watch?.buildId === t.build_id ? this.#watch : null;
      this.#report(watch?.state ?? "healthy", { ...base, detail: watch?.detail ?? null });
      return;
    }
    const started = Date.now();
    this.#report("pending", base);
    if (!(await d.releases.has(t.build_id, t.manifest_digest))) {
      const abort = new AbortController();
      this.#downloadAbort = abort;
      try {
        this.#report("downloading", base);
        await fetchRelease(d, t, {
          onProgress: (progress) => this.#report("downloading", { ...base, progress }),
          signal: abort.signal,
        });
      } finally {
        this.#downloadAbort = null;
      }
    }
    if (this.#target !== goal)
      throw new Superseded(`generation ${this.#target?.generation} arrived`);
    this.#report("installed", base);
    const previous = await d.releases.current();
    this.#unwatch();
    await d.supervisor.stop();
    await d.releases.switchTo(t.build_id);
    d.logger.log("info", "release:switched", {
      app: d.app,
      build_id: t.build_id,
      previous_build_id: previous,
    });
    const health = await launchRelease(this.#d, next, t.build_id, this.#stopped.signal);
    if (health.ok) {
      await this.#apply(next);
      this.#report("healthy", base);
      this.#watchRunning(next, t.build_id);
      d.logger.log("info", "deploy:healthy", {
        app: d.app,
        build_id: t.build_id,
        generation: goal.generation,
        ms: Date.now() - started,
      });
      for (const gone of await d.releases.prune(d.keepReleases, [
        t.build_id,
        ...(previous === null ? [] : [previous]),
      ])) {
        d.logger.log("info", "release:pruned", { app: d.app, build_id: gone });
      }
      // Downloads a newer goal superseded are not resumed any more: their partial files go.
      for (const build of await d.state.downloads(d.app)) {
        await Deno.remove(`${d.partialDir}/${d.app}-${build}.part`).catch(() => {});
        await d.state.clearProgress(d.app, build);
      }
      return;
    }
    d.logger.log("warn", "deploy:failed", {
      app: d.app,
      build_id: t.build_id,
      generation: goal.generation,
      reason: health.reason,
    });
    await d.supervisor.stop();
    this.#failed = { generation: goal.generation, build_id: t.build_id, reason: health.reason };
    await d.state.setFailed(d.app, this.#failed);
    if (previous !== null && previous !== t.build_id && applied) {
      await d.releases.switchTo(previous);
      d.logger.log("warn", "deploy:rolled-back", {
        app: d.app,
        from_build_id: t.build_id,
        to_build_id: previous,
      });
      const back = await launchRelease(this.#d, applied, previous, this.#stopped.signal);
      if (d.supervisor.buildId === previous)
        this.#watchRunning(applied, previous, back.ok ? undefined : back.reason.slice(0, 1000));
    } else {
      d.logger.log("warn", "deploy:rolled-back", {
        app: d.app,
        from_build_id: t.build_id,
        to_build_id: null,
      });
    }
    this.#report("failed", {
      ...base,
      detail: `health check failed: ${health.reason}`.slice(0, 1000),
    });
  }

  async #apply(next: AppliedGoal): Promise<void> {
    await this.#d.state.setApplied(this.#d.app, next);
    this.#applied = next;
  }
}

function sameRun(a: AppliedGoal, b: AppliedGoal): boolean {
  return (
    a.build_id === b.build_id &&
    a.run_command === b.run_command &&
    JSON.stringify(a.health_check) === JSON.stringify(b.health_check)
  );
}
