import type { MachineView, RegionSummary } from "../goal-state/relay-status.ts";

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
}

export interface Progress {
  regions: RegionProgress[];
  done: boolean;
  failed: number;
  waiting: string | null;
}

/** Where one machine stands relative to the build being rolled out. */
function stateOf(m: MachineView, buildId: number): keyof RegionCounts {
  if (!m.reachable) return "unreachable";
  if (m.build_id !== buildId) return m.state === "failed" ? "failed" : "pending";
  return m.state;
}

/**
 * Per-region counts of the machines running `app` against `buildId`, and in plain words what
 * the rollout waits for. A region is done when every reachable machine is healthy on the build;
 * a region where no reachable machine reports the app is not done (silence is not success).
 */
export function rolloutProgress(
  app: string,
  buildId: number,
  regions: { region: string; summary: RegionSummary }[],
): Progress {
  const out: RegionProgress[] = regions.map(({ region, summary }) => {
    const counts: RegionCounts = {
      pending: 0,
      downloading: 0,
      installed: 0,
      healthy: 0,
      failed: 0,
      unreachable: 0,
    };
    const latest = new Map<string, MachineView>();
    for (const m of summary.machines) {
      if (m.app !== app) continue;
      const prior = latest.get(m.machine_id);
      if (!prior || prior.reported_at < m.reported_at) latest.set(m.machine_id, m);
    }
    for (const m of latest.values()) counts[stateOf(m, buildId)]++;
    const machines = latest.size;
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
    return { region, machines, counts, done, waiting };
  });
  const failed = out.reduce((n, r) => n + r.counts.failed, 0);
  const waiting = out.find((r) => r.waiting)?.waiting ?? null;
  return { regions: out, done: out.every((r) => r.done), failed, waiting };
}
