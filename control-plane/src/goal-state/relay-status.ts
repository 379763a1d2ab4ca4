import { z } from "zod";
import {
  type AppAggregate,
  aggregateMachines,
  type CountEntry,
  canaryHistogramSchema,
  type GoalRef,
  labelSets,
  MAX_PROBLEMS,
  type MachineReport,
  machineReportSchema,
  machinesPageSchema,
  type Problem,
  summaryMessageSchema,
} from "../../../protocol/machine-status.ts";
import { labelsKey, type Placement, placedOn } from "../../../protocol/placement.ts";

export {
  type CountEntry,
  MAX_PROBLEMS,
  type MachineReport,
} from "../../../protocol/machine-status.ts";
export const MACHINE_STATES = ["pending", "downloading", "installed", "healthy", "failed"] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

/** A relay's report counts as current this long; after that its machines are unreachable. */
export const REPORT_STALE_MS = 30_000;

const RelayId = z.string().regex(/^[\w.:-]{1,128}$/);
const Message = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("hello"),
    relay_id: RelayId,
    url: z.string().max(512).nullable(),
  }),
  /** Relays before step 12: every machine, every time (aggregated here, on arrival). */
  z.strictObject({
    type: z.literal("status"),
    relay_id: RelayId,
    machines: z.array(machineReportSchema).max(20_000),
  }),
  summaryMessageSchema,
  machinesPageSchema,
  canaryHistogramSchema,
]);
export type RelayMessage = z.infer<typeof Message>;

export function parseRelayMessage(
  raw: string | ArrayBuffer,
): { ok: true; message: RelayMessage } | { ok: false; error: string } {
  if (typeof raw !== "string") return { ok: false, error: "relay messages are JSON text" };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  const r = Message.safeParse(value);
  if (!r.success)
    return {
      ok: false,
      error: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    };
  return { ok: true, message: r.data };
}

/** What the regional instance keeps of one relay: its aggregate, never its machine list. */
export interface RelayReport {
  relay_id: string;
  url: string | null;
  at: number;
  /** `list`: the relay sends every machine (kept apart, for listing); `summary`: counts. */
  format: "summary" | "list";
  machines: number;
  apps: AppAggregate[];
  problems: Problem[];
  problems_total: number;
  /** Connected machines by label set (relays since step 12, and lists). */
  label_sets?: { labels: Record<string, string>; n: number }[];
  label_sets_other?: number;
}

/** The report of a relay that sent its full machine list: aggregated as a relay would. */
export function reportFromList(
  relayId: string,
  url: string | null,
  machines: readonly MachineReport[],
  goals: ReadonlyMap<string, GoalRef>,
  at: number,
): RelayReport {
  return {
    relay_id: relayId,
    url,
    at,
    format: "list",
    machines: new Set(machines.map((m) => m.machine_id)).size,
    ...aggregateMachines(machines, goals),
    ...labelSets(
      new Map(
        machines.filter((m) => m.connected !== false).map((m) => [m.machine_id, m] as const),
      ).values(),
    ),
  };
}

/** One relay's counts for one app, as rollouts read them. */
export interface RelayAppView {
  relay_id: string;
  /** Silent for REPORT_STALE_MS: its machines count unreachable. */
  stale: boolean;
  at: number;
  goal_generation: number | null;
  counts: CountEntry[];
  away: number;
}

export interface RelayView {
  relay_id: string;
  url: string | null;
  machines: number;
  last_report_at: string;
  stale: boolean;
}

/** A machine as listed: its report, the relay it came from, and whether that relay is live. */
export interface MachineView extends MachineReport {
  relay_id: string;
  reachable: boolean;
  reported_at: string;
}

/**
 * A region's status, bounded by relays × apps × states, whatever the number of machines: the
 * relays, each app's counts per relay, and a sample of problem machines (failed first).
 */
export interface RegionSummary {
  relays: RelayView[];
  apps: Record<string, RelayAppView[]>;
  problems: (Problem & { relay_id: string; reachable: boolean })[];
  problems_total: number;
  /** Machines of live relays by label set; `other`: machines of sets a relay did not list. */
  label_sets: { labels: Record<string, string>; n: number }[];
  label_sets_other: number;
}

export function summarize(reports: RelayReport[], now: number): RegionSummary {
  const apps: Record<string, RelayAppView[]> = {};
  const problems: RegionSummary["problems"] = [];
  let problemsTotal = 0;
  const sets = new Map<string, { labels: Record<string, string>; n: number }>();
  let setsOther = 0;
  for (const r of reports) {
    const stale = now - r.at > REPORT_STALE_MS;
    if (!stale) {
      for (const l of r.label_sets ?? []) {
        const key = labelsKey(l.labels);
        const prior = sets.get(key);
        if (prior) prior.n += l.n;
        else sets.set(key, { labels: l.labels, n: l.n });
      }
      setsOther += r.label_sets_other ?? 0;
    }
    for (const a of r.apps) {
      apps[a.app] ??= [];
      apps[a.app]!.push({
        relay_id: r.relay_id,
        stale,
        at: r.at,
        goal_generation: a.goal_generation,
        counts: a.counts,
        away: a.away,
      });
    }
    for (const p of r.problems) problems.push({ ...p, relay_id: r.relay_id, reachable: !stale });
    problemsTotal += r.problems_total;
  }
  const rank = { failed: 0, away: 1, restarting: 2 };
  problems.sort(
    (x, y) => rank[x.problem] - rank[y.problem] || x.machine_id.localeCompare(y.machine_id),
  );
  return {
    relays: reports.map((r) => ({
      relay_id: r.relay_id,
      url: r.url,
      machines: r.machines,
      last_report_at: new Date(r.at).toISOString(),
      stale: now - r.at > REPORT_STALE_MS,
    })),
    apps,
    problems: problems.slice(0, MAX_PROBLEMS),
    problems_total: problemsTotal,
    label_sets: [...sets.values()],
    label_sets_other: setsOther,
  };
}

/**
 * How many machines of live relays a placement matches (null: every one), and whether some
 * could not be judged (label sets past what relays list). `unknown` also when a relay before
 * step 12 counts machines without label sets.
 */
export function placedMachines(
  summary: RegionSummary,
  placement: Placement | null,
): { n: number; unknown: number } {
  let n = 0;
  for (const l of summary.label_sets) if (placedOn(placement, l.labels)) n += l.n;
  return { n, unknown: summary.label_sets_other };
}

/** Per state, the reachable (machine, app) pairs of a region, and how many are unreachable. */
export function stateCounts(summary: RegionSummary): {
  reported: number;
  unreachable: number;
  states: Record<string, number>;
} {
  const states: Record<string, number> = {};
  let reported = 0;
  let unreachable = 0;
  for (const views of Object.values(summary.apps)) {
    for (const v of views) {
      const total = v.counts.reduce((n, c) => n + c.n, 0);
      reported += total + v.away;
      if (v.stale) {
        unreachable += total + v.away;
        continue;
      }
      unreachable += v.away;
      for (const c of v.counts) states[c.state] = (states[c.state] ?? 0) + c.n;
    }
  }
  return { reported, unreachable, states };
}
