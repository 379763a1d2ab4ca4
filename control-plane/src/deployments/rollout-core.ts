import type { RelayAppView } from "../goal-state/relay-status.ts";
import { rolloutProgress } from "./progress.ts";
import type { Plan, Wave } from "./strategy.ts";

/** A paused rollout that nobody resumes is aborted after this: no rollout can wedge. */
export const PAUSE_LIMIT_MS = 24 * 3600_000;

export type WaveStatus = "pending" | "rolling" | "baking" | "passed" | "failed";

export interface WaveState {
  name: string;
  status: WaveStatus;
  started_at: number | null;
  finished_at: number | null;
  bake_until: number | null;
  /** The goal generation this wave set (a canary's machines are chosen by it). */
  generation: number | null;
  /** A canary's share of its region, fixed when the wave starts. */
  percent: number | null;
  detail: string | null;
}

export interface RolloutState {
  plan: Plan;
  wave: number;
  waves: WaveState[];
  paused: { by: string; at: number } | null;
}

export type Action =
  | {
      type: "start-wave";
      wave: number;
      regions: string[];
      canary: { machines?: number; percent?: number } | null;
    }
  | { type: "revert"; regions: string[] }
  | { type: "end"; status: "SUCCEEDED" | "ROLLED_BACK" | "FAILED" | "ABORTED"; reason: string };

export interface Observation {
  app: string;
  deploymentId: number;
  buildId: number;
  hasPrevious: boolean;
  /** Each relay's counts of the app's machines, by region (relay-status.ts). */
  counts: Record<string, RelayAppView[]>;
  /** When each live relay of a region last reported (ms), by region. */
  relayReports: Record<string, number[]>;
}

/**
 * Whether every live relay of the wave's regions has reported since the wave began, and every
 * relay that counts the app's machines did so under the wave's goal (its canary flags refer to
 * it): until then an empty or unchanged picture is old news. It is not enough on its own: a
 * wave also needs machines that report (countWave's `silent`).
 */
export function heardSince(wave: Wave, ws: WaveState, obs: Observation, since: number): boolean {
  return wave.regions.every(
    (r) =>
      (obs.relayReports[r] ?? []).every((at) => at > since) &&
      (obs.counts[r] ?? []).every(
        (v) =>
          v.stale ||
          (ws.generation !== null &&
            v.goal_generation !== null &&
            v.goal_generation >= ws.generation),
      ),
  );
}

export function initialState(plan: Plan): RolloutState {
  return {
    plan,
    wave: 0,
    paused: null,
    waves: plan.waves.map((w) => ({
      name: w.name,
      status: "pending",
      started_at: null,
      finished_at: null,
      bake_until: null,
      generation: null,
      percent: null,
      detail: null,
    })),
  };
}

/** Regions whose goal this rollout has changed so far (what a revert must put back). */
export function touched(state: RolloutState): string[] {
  const out = new Set<string>();
  state.plan.waves.forEach((w, i) => {
    if (state.waves[i]!.started_at !== null) for (const r of w.regions) out.add(r);
  });
  return [...out];
}

interface WaveCount {
  expected: number;
  healthy: number;
  failed: number;
  busy: number;
  /** Regions of the wave where no reachable machine reports the app: silence, not success. */
  silent: { region: string; unreachable: number }[];
}

/**
 * The machines a wave is waiting on, and where they stand against the build, from the relays'
 * counts. A machine counts as healthy or failed only once it reports the wave's generation (or
 * a newer one): before that its state is about an older goal, and it is still busy. A canary
 * wave counts the machines its relays put in the canary share of the goal they hold.
 */
export function countWave(wave: Wave, ws: WaveState, obs: Observation): WaveCount {
  const c: WaveCount = { expected: 0, healthy: 0, failed: 0, busy: 0, silent: [] };
  for (const region of wave.regions) {
    let reporting = 0;
    let unreachable = 0;
    for (const v of obs.counts[region] ?? []) {
      const total = v.counts.reduce((n, e) => n + e.n, 0);
      if (v.stale) {
        unreachable += total + v.away;
        continue;
      }
      unreachable += v.away;
      reporting += total;
      for (const e of v.counts) {
        if (wave.kind === "canary" && (ws.percent === null || !e.canary)) continue;
        c.expected += e.n;
        const current =
          ws.generation !== null && e.generation !== null && e.generation >= ws.generation;
        if (current && e.build_id === obs.buildId && e.state === "healthy") c.healthy += e.n;
        else if (current && e.build_id === obs.buildId && e.state === "failed") c.failed += e.n;
        else c.busy += e.n;
      }
    }
    if (reporting === 0) c.silent.push({ region, unreachable });
  }
  return c;
}

/**
 * Why a wave with nobody to count cannot pass, or null: "no machine in eu-west reports web
 * yet" (and how many went quiet), or a canary share that holds none of the region's machines.
 */
function nobodyReason(app: string, wave: Wave, c: WaveCount, yet: string): string | null {
  if (c.silent.length > 0) {
    return c.silent
      .map(
        (s) =>
          `no machine in ${s.region} reports ${app}${yet}${s.unreachable > 0 ? ` (${s.unreachable} unreachable)` : ""}`,
      )
      .join("; ");
  }
  if (c.expected === 0) return `no machine in ${wave.regions.join(", ")} falls in the ${wave.name}`;
  return null;
}

/** What the rollout waits for, in plain words (null when nothing). */
export function waitingReason(state: RolloutState, obs: Observation, now: number): string | null {
  if (state.paused) return `paused by ${state.paused.by}`;
  const wave = state.plan.waves[state.wave];
  const ws = state.waves[state.wave];
  if (!wave || !ws) return null;
  if (ws.status === "baking" && ws.bake_until !== null) {
    return `baking ${wave.name}: ${Math.max(0, Math.ceil((ws.bake_until - now) / 1000))} s left`;
  }
  const c = countWave(wave, ws, obs);
  const nobody = nobodyReason(obs.app, wave, c, " yet");
  if (nobody) return `waiting: ${nobody}`;
  if (wave.kind === "canary") {
    return c.busy > 0
      ? `waiting: ${c.busy} of ${c.expected} canary machines in ${wave.regions[0]} not yet healthy`
      : null;
  }
  // A wave of whole regions: the same words as the per-region progress, for its regions only.
  return rolloutProgress(
    obs.app,
    obs.buildId,
    wave.regions.map((region) => ({ region, counts: obs.counts[region] ?? [] })),
  ).waiting;
}

/**
 * One step of a rollout (pure): advances the current wave through rolling → baking → passed,
 * starts the next, and decides the end. A wave whose failures exceed the plan's ratio, or that
 * is not healthy by its deadline, rolls the whole rollout back (when there is a previous build).
 */
export function advance(
  state: RolloutState,
  obs: Observation,
  now: number,
): { state: RolloutState; actions: Action[] } {
  const s: RolloutState = { ...state, waves: state.waves.map((w) => ({ ...w })) };
  const actions: Action[] = [];
  const fail = (reason: string) => {
    const w = s.waves[s.wave]!;
    w.status = "failed";
    w.finished_at = now;
    w.detail = reason;
    if (obs.hasPrevious) {
      actions.push({ type: "revert", regions: touched(s) });
      actions.push({
        type: "end",
        status: "ROLLED_BACK",
        reason: `${reason}; rolled back automatically`,
      });
    } else {
      actions.push({
        type: "end",
        status: "FAILED",
        reason: `${reason}; no previous build to roll back to`,
      });
    }
  };
  if (s.paused) {
    if (now - s.paused.at > PAUSE_LIMIT_MS) {
      actions.push({ type: "revert", regions: touched(s) });
      actions.push({
        type: "end",
        status: "ABORTED",
        reason: `paused by ${s.paused.by} for over 24 h; aborted`,
      });
    }
    return { state: s, actions };
  }
  const wave = s.plan.waves[s.wave]!;
  const ws = s.waves[s.wave]!;
  if (ws.status === "pending") {
    ws.status = "rolling";
    ws.started_at = now;
    const canary =
      wave.kind === "canary"
        ? {
            ...(wave.percent !== undefined ? { percent: wave.percent } : {}),
            ...(wave.machines !== undefined ? { machines: wave.machines } : {}),
          }
        : null;
    actions.push({ type: "start-wave", wave: s.wave, regions: wave.regions, canary });
    return { state: s, actions };
  }
  const c = countWave(wave, ws, obs);
  if (c.failed > 0 && c.failed / Math.max(1, c.expected) > s.plan.max_failure_ratio) {
    fail(`${wave.name} failed health: ${c.failed}/${c.expected} machines`);
    return { state: s, actions };
  }
  if (ws.status === "rolling") {
    const nobody = nobodyReason(obs.app, wave, c, "");
    const passed =
      nobody === null &&
      c.busy === 0 &&
      ws.generation !== null &&
      heardSince(wave, ws, obs, ws.started_at ?? 0);
    if (passed) {
      ws.status = "baking";
      ws.bake_until = now + s.plan.bake_ms;
      ws.detail = `${c.healthy}/${c.expected} machines healthy`;
    } else if (ws.started_at !== null && now - ws.started_at > s.plan.wave_deadline_ms) {
      const what = nobody ?? `${c.busy} of ${c.expected} machines not yet healthy`;
      fail(`${wave.name} not healthy within ${s.plan.wave_deadline_ms / 1000} s: ${what}`);
      return { state: s, actions };
    }
  }
  if (ws.status === "baking" && ws.bake_until !== null && now >= ws.bake_until) {
    ws.status = "passed";
    ws.finished_at = now;
    if (s.wave + 1 >= s.plan.waves.length) {
      actions.push({
        type: "end",
        status: "SUCCEEDED",
        reason: "every wave passed its health gate",
      });
      return { state: s, actions };
    }
    s.wave++;
    return advance(s, obs, now);
  }
  return { state: s, actions };
}

/** Pause, resume and abort: operator commands applied to the state (pure). */
export function pause(state: RolloutState, by: string, now: number): RolloutState {
  return state.paused ? state : { ...state, paused: { by, at: now } };
}

export function resume(state: RolloutState): RolloutState {
  return { ...state, paused: null };
}
