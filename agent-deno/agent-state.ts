/**
 * What the agent must remember across restarts, in Deno KV: per app the goal it applied (so it
 * keeps running it with everything upstream down, and never moves below its generation), the
 * generation that failed (so it is not retried in a loop), download progress per build (so a
 * restarted download resumes), the app's port slot, and the running process (so an orphan left
 * by a killed agent is stopped before the app is started again).
 */
import type { HealthCheck } from "../protocol/goal.ts";

export interface AppliedGoal {
  generation: number;
  deployment_id: number;
  build_id: number;
  manifest_digest: string;
  run_command: string;
  health_check: HealthCheck | null;
}

export interface FailedGoal {
  generation: number;
  build_id: number;
  reason: string;
}

export interface DownloadProgress {
  manifest_digest: string;
  /** Bit i set: chunk i is written and verified in the partial file. */
  done: Uint8Array;
}

export interface RunningProcess {
  pid: number;
  /** Set as FLEETSHIP_APP_INSTANCE in the app's environment: proves a pid is still ours. */
  instance: string;
  build_id: number;
}

export class AgentState {
  constructor(private readonly kv: Deno.Kv) {}

  async applied(app: string): Promise<AppliedGoal | null> {
    return (await this.kv.get<AppliedGoal>(["applied", app])).value;
  }

  async setApplied(app: string, goal: AppliedGoal): Promise<void> {
    await this.kv.set(["applied", app], goal);
  }

  /** Apps with an applied goal: what to start when the agent starts. */
  async appliedApps(): Promise<string[]> {
    const apps: string[] = [];
    for await (const e of this.kv.list({ prefix: ["applied"] })) apps.push(String(e.key[1]));
    return apps;
  }

  async failed(app: string): Promise<FailedGoal | null> {
    return (await this.kv.get<FailedGoal>(["failed", app])).value;
  }

  async setFailed(app: string, failed: FailedGoal): Promise<void> {
    await this.kv.set(["failed", app], failed);
  }

  async progress(app: string, buildId: number): Promise<DownloadProgress | null> {
    return (await this.kv.get<DownloadProgress>(["download", app, buildId])).value;
  }

  async setProgress(app: string, buildId: number, progress: DownloadProgress): Promise<void> {
    await this.kv.set(["download", app, buildId], progress);
  }

  /** Builds of `app` with a download in progress (superseded ones included). */
  async downloads(app: string): Promise<number[]> {
    const builds: number[] = [];
    for await (const e of this.kv.list({ prefix: ["download", app] }))
      builds.push(Number(e.key[2]));
    return builds;
  }

  async clearProgress(app: string, buildId: number): Promise<void> {
    await this.kv.delete(["download", app, buildId]);
  }

  async process(app: string): Promise<RunningProcess | null> {
    return (await this.kv.get<RunningProcess>(["process", app])).value;
  }

  async setProcess(app: string, process: RunningProcess | null): Promise<void> {
    if (process === null) await this.kv.delete(["process", app]);
    else await this.kv.set(["process", app], process);
  }

  /**
   * Forgets an app stopped and removed under `generation` (undeployed, or no longer placed on
   * this machine): what it applied, failed and downloaded; a goal for it at or below that
   * generation is refused from then on (a replayed old goal does not bring it back).
   */
  async forget(app: string, generation: number): Promise<void> {
    const op = this.kv.atomic().set(["removed", app], generation);
    for (const key of [
      ["applied", app],
      ["failed", app],
      ["process", app],
    ])
      op.delete(key);
    for await (const e of this.kv.list({ prefix: ["download", app] })) op.delete(e.key);
    await op.commit();
  }

  /** The generation under which the app was last removed here, if it was. */
  async removedAt(app: string): Promise<number | null> {
    return (await this.kv.get<number>(["removed", app])).value;
  }

  /** The app's port slot (0, 1, 2, …), assigned once, in the order apps are first seen. */
  async portSlot(app: string): Promise<number> {
    for (;;) {
      const mine = await this.kv.get<number>(["port-slot", app]);
      if (mine.value !== null) return mine.value;
      const next = await this.kv.get<number>(["port-slot-next"]);
      const slot = next.value ?? 0;
      const commit = await this.kv
        .atomic()
        .check(mine, next)
        .set(["port-slot", app], slot)
        .set(["port-slot-next"], slot + 1)
        .commit();
      if (commit.ok) return slot;
    }
  }
}

/** Bit helpers for DownloadProgress.done. */
export function bitfield(count: number): Uint8Array {
  return new Uint8Array(Math.ceil(count / 8));
}

export function hasBit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

export function setBit(bits: Uint8Array, i: number, on = true): void {
  const byte = bits[i >> 3] ?? 0;
  bits[i >> 3] = on ? byte | (1 << (i & 7)) : byte & ~(1 << (i & 7));
}
