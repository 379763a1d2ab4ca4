/**
 * What a region relay tells the control plane about its machines (docs/goal-state.md): per app,
 * counts of machines by (build, generation, state, canary membership), and a bounded sample of
 * the machines that need a look (failed, away, restarting), so that a status message grows with
 * apps and states, never with the number of healthy machines. Individual machines are listed
 * only on demand, a page at a time (`machines_query`). The relay aggregates its own machines;
 * the control plane aggregates, the same way, the full lists that relays before step 12 send.
 */
import { z } from "zod";
import { canaryBucket } from "./goal.ts";
import { APP_NAME_PATTERN } from "./manifest.ts";
import { type Labels, labelsKey, labelsSchema, placedOn } from "./placement.ts";
import { APP_STATES, MACHINE_ID_PATTERN, MAX_DETAIL_LENGTH } from "./relay-messages.ts";

/** Problem machines a summary lists at most (all are counted in `problems_total`). */
export const MAX_PROBLEMS = 100;
/** Largest page of machines a `machines_query` asks for. */
export const MAX_MACHINES_PAGE = 1000;
/** Machine ids one summary names as newly arrived (more wait for the next summary). */
export const MAX_ARRIVED = 1000;
/** Distinct label sets one summary counts (machines beyond are counted as `other`). */
export const MAX_LABEL_SETS = 200;

const count = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const app = z.string().regex(APP_NAME_PATTERN);
const relayId = z.string().regex(/^[\w.:-]{1,128}$/);

/** One machine's state for one app, as its relay last heard it. */
export const machineReportSchema = z.strictObject({
  machine_id: z.string().regex(MACHINE_ID_PATTERN),
  app,
  build_id: count.nullable(),
  generation: count.nullable(),
  state: z.enum(APP_STATES),
  detail: z.string().max(MAX_DETAIL_LENGTH).nullable().optional(),
  /** False while the machine is away from this relay (still reported for a grace period). */
  connected: z.boolean().optional(),
  /** Restarts of the app's process since its release started (agents since step 11). */
  restarts: count.optional(),
  /** The machine's labels (agents since step 12 that carry any). */
  labels: labelsSchema.optional(),
});
export type MachineReport = z.infer<typeof machineReportSchema>;

const countEntrySchema = z.strictObject({
  build_id: count.nullable(),
  generation: count.nullable(),
  state: z.enum(APP_STATES),
  /** In the canary share of the goal the relay holds for the app (`goal_generation`). */
  canary: z.boolean(),
  n: count,
});
export type CountEntry = z.infer<typeof countEntrySchema>;

const appAggregateSchema = z.strictObject({
  app,
  /** The generation of the app's goal the relay held when it counted (canary flags refer to it). */
  goal_generation: count.nullable(),
  /** Connected machines, by what they report. */
  counts: z.array(countEntrySchema).max(10_000),
  /** Machines that left the relay within its grace period (not counted above). */
  away: count,
});
export type AppAggregate = z.infer<typeof appAggregateSchema>;

export const PROBLEM_KINDS = ["failed", "away", "restarting"] as const;
const problemSchema = machineReportSchema.extend({ problem: z.enum(PROBLEM_KINDS) });
export type Problem = z.infer<typeof problemSchema>;

/** Relay → control plane: the aggregated status (relays since step 12). */
export const summaryMessageSchema = z.strictObject({
  type: z.literal("summary"),
  relay_id: relayId,
  /** Machines the relay holds (connected or within the grace period). */
  machines: count,
  apps: z.array(appAggregateSchema).max(10_000),
  problems: z.array(problemSchema).max(MAX_PROBLEMS),
  problems_total: count,
  /**
   * Machines that said hello since the relay's last summary: the control plane tells the
   * region's other relays to forget them if they hold them as away, so a machine that moved
   * between relays is counted once (its old relay would count it unreachable for its grace).
   */
  arrived: z.array(z.string().regex(MACHINE_ID_PATTERN)).max(MAX_ARRIVED).optional(),
  /**
   * Connected machines by label set (what a placement can match: a deployment whose placement
   * matches none is refused); `n` for each, the sets beyond MAX_LABEL_SETS counted in
   * `label_sets_other`.
   */
  label_sets: z
    .array(z.strictObject({ labels: labelsSchema, n: count }))
    .max(MAX_LABEL_SETS)
    .optional(),
  label_sets_other: count.optional(),
});
export type SummaryMessage = z.infer<typeof summaryMessageSchema>;

/** What of an app's goal decides canary membership. */
export interface GoalRef {
  generation: number;
  deployment_id: number;
  canary: { percent: number } | null;
}

export function inCanary(machineId: string, goal: GoalRef | undefined): boolean {
  return !!goal?.canary && canaryBucket(machineId, goal.deployment_id) < goal.canary.percent;
}

/** Why a machine needs a look, or null: failed first, then away, then restarting. */
function problemOf(m: MachineReport): Problem["problem"] | null {
  if (m.state === "failed") return "failed";
  if (m.connected === false) return "away";
  if ((m.restarts ?? 0) > 0) return "restarting";
  return null;
}

const RANK: Record<Problem["problem"], number> = { failed: 0, away: 1, restarting: 2 };

/**
 * Counts `machines` per app (connected ones by build, generation, state and canary membership
 * under `goals`; away ones apart) and samples the problem machines, failed first.
 */
export function aggregateMachines(
  machines: readonly MachineReport[],
  goals: ReadonlyMap<string, GoalRef>,
  maxProblems = MAX_PROBLEMS,
): Pick<SummaryMessage, "apps" | "problems" | "problems_total"> {
  const apps = new Map<string, { agg: AppAggregate; entries: Map<string, CountEntry> }>();
  const problems: Problem[] = [];
  for (const m of machines) {
    let a = apps.get(m.app);
    if (!a) {
      const agg = {
        app: m.app,
        goal_generation: goals.get(m.app)?.generation ?? null,
        counts: [],
        away: 0,
      };
      a = { agg, entries: new Map() };
      apps.set(m.app, a);
    }
    const problem = problemOf(m);
    if (problem) problems.push({ ...m, problem });
    if (m.connected === false) {
      a.agg.away++;
      continue;
    }
    const canary = inCanary(m.machine_id, goals.get(m.app));
    const key = `${m.build_id}/${m.generation}/${m.state}/${canary}`;
    let e = a.entries.get(key);
    if (!e) {
      e = { build_id: m.build_id, generation: m.generation, state: m.state, canary, n: 0 };
      a.entries.set(key, e);
      a.agg.counts.push(e);
    }
    e.n++;
  }
  problems.sort(
    (x, y) => RANK[x.problem] - RANK[y.problem] || x.machine_id.localeCompare(y.machine_id),
  );
  return {
    apps: [...apps.values()].map((a) => a.agg),
    problems: problems.slice(0, maxProblems),
    problems_total: problems.length,
  };
}

/** The goal references of a region's goal documents (what relays and the control plane hold). */
export function goalRefs(
  goals: readonly {
    app: string;
    generation: number;
    deployment_id: number;
    canary: { percent: number } | null;
  }[],
): Map<string, GoalRef> {
  return new Map(
    goals.map((g) => [
      g.app,
      { generation: g.generation, deployment_id: g.deployment_id, canary: g.canary },
    ]),
  );
}

/** Control plane → relay: a page of its machines, in (machine_id, app) order after `after`. */
export const machinesQuerySchema = z.strictObject({
  type: z.literal("machines_query"),
  id: count,
  app: app.nullable(),
  state: z.enum(APP_STATES).nullable(),
  after: z.tuple([z.string().max(128), z.string().max(64)]).nullable(),
  limit: z.int().min(1).max(MAX_MACHINES_PAGE),
});
export type MachinesQuery = z.infer<typeof machinesQuerySchema>;

/** Control plane → relay: how many of its machines fall in each canary bucket of a deployment. */
export const canaryQuerySchema = z.strictObject({
  type: z.literal("canary_query"),
  id: count,
  app,
  deployment_id: count,
  /** Count only machines carrying these labels (the deployment's placement); absent: all. */
  labels: labelsSchema.nullable().optional(),
});
export type CanaryQuery = z.infer<typeof canaryQuerySchema>;

/** Control plane → relay: these machines are connected to another relay of the region. */
export const forgetMessageSchema = z.strictObject({
  type: z.literal("forget"),
  machine_ids: z.array(z.string().regex(MACHINE_ID_PATTERN)).max(MAX_ARRIVED),
});
export type ForgetMessage = z.infer<typeof forgetMessageSchema>;

/** Relay → control plane: the answers. */
export const machinesPageSchema = z.strictObject({
  type: z.literal("machines_page"),
  id: count,
  machines: z.array(machineReportSchema).max(MAX_MACHINES_PAGE),
  /** Whether machines after the last one match too. */
  more: z.boolean(),
});
export type MachinesPage = z.infer<typeof machinesPageSchema>;

export const canaryHistogramSchema = z.strictObject({
  type: z.literal("canary_histogram"),
  id: count,
  /** counts[b]: connected machines (the app placed on them) whose canaryBucket is b. */
  counts: z.array(count).length(100),
});
export type CanaryHistogram = z.infer<typeof canaryHistogramSchema>;

/** The relay's side of both queries, over its machine reports. */
export function answerMachinesQuery(
  machines: readonly MachineReport[],
  q: MachinesQuery,
): MachinesPage {
  const matching = machines
    .filter((m) => (q.app === null || m.app === q.app) && (q.state === null || m.state === q.state))
    .filter((m) => q.after === null || compareKey(m, q.after) > 0)
    .sort((x, y) => compareKey(x, [y.machine_id, y.app]));
  return {
    type: "machines_page",
    id: q.id,
    machines: matching.slice(0, q.limit),
    more: matching.length > q.limit,
  };
}

/**
 * Machines of the relay placed by the query's labels whose canary bucket for the deployment is
 * each of 0..99.
 */
export function canaryHistogram(
  machines: Iterable<{ machine_id: string; labels?: Labels | undefined }>,
  q: CanaryQuery,
): CanaryHistogram {
  const counts = new Array<number>(100).fill(0);
  const placement = q.labels ? { labels: q.labels } : null;
  for (const m of machines) {
    if (placedOn(placement, m.labels ?? {})) counts[canaryBucket(m.machine_id, q.deployment_id)]!++;
  }
  return { type: "canary_histogram", id: q.id, counts };
}

/** Connected machines grouped by label set, at most `max` sets (the rest counted as other). */
export function labelSets(
  machines: Iterable<{ labels?: Labels | undefined }>,
  max = MAX_LABEL_SETS,
): { label_sets: { labels: Record<string, string>; n: number }[]; label_sets_other: number } {
  const sets = new Map<string, { labels: Record<string, string>; n: number }>();
  let other = 0;
  for (const m of machines) {
    const labels = m.labels ?? {};
    const key = labelsKey(labels);
    const s = sets.get(key);
    if (s) s.n++;
    else if (sets.size < max) sets.set(key, { labels: { ...labels }, n: 1 });
    else other++;
  }
  return { label_sets: [...sets.values()], label_sets_other: other };
}

export function compareKey(m: { machine_id: string; app: string }, key: readonly [string, string]) {
  return m.machine_id < key[0]
    ? -1
    : m.machine_id > key[0]
      ? 1
      : m.app < key[1]
        ? -1
        : m.app > key[1]
          ? 1
          : 0;
}
