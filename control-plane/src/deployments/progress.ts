import type { CountEntry, RegionSummary, RelayAppView } from "../goal-state/relay-status.ts";

/** Problem machines of the app a deployment view names per region (the rest are counted). */
export const PROBLEMS_SHOWN = 10;

export interface RegionCounts {
  pending: number;
  downloading: number;
  installed: number;
  healthy: number;
  failed: number;
  unreachable: number;
}

export interface RegionProgress {
  region: string;
  machines: number;
  counts: RegionCounts;
  done: boolean;
  waiting: string | null;
  /** The app's machines that need a look, failed first, with why (a sample). */
  problems: {
    machine_id: string;
    problem: "failed" | "away" | "restarting" | "unreachable";
    state: string;
    build_id: number | null;
    detail: string | null;
    restarts: number;
  }[];
}

export interface Progress {
  regions: RegionProgress[];
  done: boolean;
  failed: number;
  waiting: string | null;
}

/** Where machines of one count entry stand relative to the build being rolled out. */
function stateOf(e: CountEntry, buildId: number): keyof RegionCounts {
  if (e.build_id !== buildId) return e.state === "failed" ? "failed" : "pending";
  return e.state;
}

/**
 * Per-region counts of the machines running `app` against `buildId` (from each relay's
 * counts: machines of a silent relay and machines away from theirs are unreachable), and in
 * plain words what the rollout waits for. A region is done when every reachable machine is
 * healthy on the build; a region where no reachable machine reports the app is not done
 * (silence is not success).
 */
export function rolloutProgress(
  app: string,
  buildId: number,
  regions: { region: string; counts: RelayAppView[]; problems?: RegionSummary["problems"] }[],
): Progress {
  const out: RegionProgress[] = regions.map(({ region, counts: views, problems = [] }) => {
    const counts: RegionCounts = {
      pending: 0,
      downloading: 0,
      installed: 0,
      healthy: 0,
      failed: 0,
      unreachable: 0,
    };
    let machines = 0;
    for (const v of views) {
      for (const e of v.counts) {
        machines += e.n;
        counts[v.stale ? "unreachable" : stateOf(e, buildId)] += e.n;
      }
      machines += v.away;
      counts.unreachable += v.away;
    }
    const reachable = machines - counts.unreachable;
    const busy = counts.pending + counts.downloading + counts.installed;
    let waiting: string | null = null;
    if (reachable === 0) {
      const quiet = counts.unreachable > 0 ? ` (${counts.unreachable} unreachable)` : "";
      waiting = `waiting: no machine in ${region} reports ${app} yet${quiet}`;
    } else if (busy > 0) {
      const what =
        counts.downloading > 0 ? "downloading" : counts.installed > 0 ? "starting" : "to start";
      waiting = `waiting: ${busy} of ${reachable} machines in ${region} still ${what}`;
    } else if (counts.failed > 0) {
      waiting = `${counts.failed} of ${reachable} machines in ${region} failed health`;
    }
    const done = reachable > 0 && busy === 0 && counts.failed === 0;
    const shown = problems
      .filter((p) => p.app === app)
      .slice(0, PROBLEMS_SHOWN)
      .map((p) => ({
        machine_id: p.machine_id,
        problem: p.reachable ? p.problem : ("unreachable" as const),
        state: p.state,
        build_id: p.build_id,
        detail: p.detail ?? null,
        restarts: p.restarts ?? 0,
      }));
    return { region, machines, counts, done, waiting, problems: shown };
  });
  const failed = out.reduce((n, r) => n + r.counts.failed, 0);
  const waiting = out.find((r) => r.waiting)?.waiting ?? null;
  return { regions: out, done: out.every((r) => r.done), failed, waiting };
}
