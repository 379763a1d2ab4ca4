import type { Canary, HealthCheck } from "../../../protocol/goal.ts";
import type { Placement } from "../../../protocol/placement.ts";

/** What one region should run for one app. */
export interface RegionTarget {
  generation: number;
  deployment_id: number;
  build_id: number;
  manifest_digest: string;
  canary: Canary | null;
  /** Which of the region's machines run it (null or absent: every machine). */
  placement?: Placement | null;
  /** Undeployed under this generation: machines stop and remove the app. */
  undeployed?: true;
}

export interface AppGoal {
  app: string;
  run_command: string;
  health_check: HealthCheck | null;
  /** The newest generation of any of the app's regions. */
  generation: number;
  deployment_id: number;
  build_id: number;
  regions: Record<string, RegionTarget>;
}

/** The `global` instance's state: one generation counter, every app's goal. */
export interface GlobalState {
  generation: number;
  apps: Record<string, AppGoal>;
}

export const emptyGlobal = (): GlobalState => ({ generation: 0, apps: {} });

export interface SetGoal {
  type: "set";
  app: string;
  deployment_id: number;
  build_id: number;
  manifest_digest: string;
  run_command: string;
  health_check: HealthCheck | null;
  /** The regions to point at this build now (all of the app's for all-at-once). */
  regions: string[];
  canary?: { region: string; percent: number } | undefined;
  /** Per region of `regions`, which machines run it (absent or null: every machine). */
  placement?: Record<string, Placement | null> | undefined;
}

export type SetResult =
  | {
      ok: true;
      generation: number;
      previous_build_id: number | null;
      superseded_deployment_id: number | null;
      /** Regions whose goal changed: push to them. */
      push: string[];
    }
  | { ok: false; reason: "superseded"; current_deployment_id: number };

/**
 * Points an app's regions at a build under a new generation. A deployment older than the one
 * the app already follows is refused (the newer deployment won the race), so the goal never
 * moves backwards and the history stays coherent: the loser is recorded as superseded.
 */
export function applySet(
  state: GlobalState,
  cmd: SetGoal,
): { state: GlobalState; result: SetResult } {
  const current = state.apps[cmd.app];
  if (current && cmd.deployment_id < current.deployment_id) {
    return {
      state,
      result: { ok: false, reason: "superseded", current_deployment_id: current.deployment_id },
    };
  }
  if (current && cmd.deployment_id === current.deployment_id) {
    // The same command again (a retried request or alarm): idempotent, nothing moves.
    const same = cmd.regions.every((r) => {
      const t = current.regions[r];
      if (!t || t.deployment_id !== cmd.deployment_id) return false;
      if (cmd.canary?.region === r) {
        return t.canary?.build_id === cmd.build_id && t.canary.percent === cmd.canary.percent;
      }
      return t.build_id === cmd.build_id && t.canary === null && !t.undeployed;
    });
    if (same) {
      return {
        state,
        result: {
          ok: true,
          generation: current.generation,
          previous_build_id: null,
          superseded_deployment_id: null,
          push: [],
        },
      };
    }
  }
  const generation = state.generation + 1;
  const regions = { ...(current?.regions ?? {}) };
  for (const region of cmd.regions) {
    const canary = cmd.canary?.region === region ? cmd.canary : undefined;
    const before = regions[region];
    const placement = cmd.placement?.[region] ?? null;
    const target: RegionTarget =
      canary && before && !before.undeployed
        ? {
            ...before,
            generation,
            deployment_id: cmd.deployment_id,
            canary: {
              build_id: cmd.build_id,
              manifest_digest: cmd.manifest_digest,
              percent: canary.percent,
            },
          }
        : {
            generation,
            deployment_id: cmd.deployment_id,
            build_id: cmd.build_id,
            manifest_digest: cmd.manifest_digest,
            canary: null,
          };
    delete target.placement;
    if (placement) target.placement = placement;
    regions[region] = target;
  }
  const app: AppGoal = {
    app: cmd.app,
    run_command: cmd.run_command,
    health_check: cmd.health_check,
    generation,
    deployment_id: cmd.deployment_id,
    build_id: cmd.build_id,
    regions,
  };
  const superseded =
    current && current.deployment_id !== cmd.deployment_id ? current.deployment_id : null;
  return {
    state: { generation, apps: { ...state.apps, [cmd.app]: app } },
    result: {
      ok: true,
      generation,
      previous_build_id:
        current && current.deployment_id !== cmd.deployment_id ? current.build_id : null,
      superseded_deployment_id: superseded,
      push: cmd.regions,
    },
  };
}

export type UndeployResult =
  | { ok: true; generation: number; push: string[] }
  | { ok: false; reason: "not_deployed" };

/**
 * Takes an app out of every region it runs in, under one new generation: each region's target
 * keeps the last build (what was undeployed) and says `undeployed`, so every machine stops the
 * app and removes it, and a later deployment (a newer generation) brings it back.
 */
export function applyUndeploy(
  state: GlobalState,
  app: string,
): { state: GlobalState; result: UndeployResult } {
  const current = state.apps[app];
  const live = Object.entries(current?.regions ?? {}).filter(([, t]) => !t.undeployed);
  if (!current || live.length === 0)
    return { state, result: { ok: false, reason: "not_deployed" } };
  const generation = state.generation + 1;
  const regions = { ...current.regions };
  for (const [region, t] of live) {
    regions[region] = { ...t, generation, canary: null, undeployed: true };
  }
  return {
    state: { generation, apps: { ...state.apps, [app]: { ...current, generation, regions } } },
    result: { ok: true, generation, push: live.map(([r]) => r) },
  };
}

/** Whether any region's goal runs the app (deployed and not undeployed since). */
export function isDeployed(state: GlobalState, app: string): string[] {
  return Object.entries(state.apps[app]?.regions ?? {})
    .filter(([, t]) => !t.undeployed)
    .map(([r]) => r);
}

/** What one app runs in one region: the inputs of its signed goal document. */
export interface RegionalGoal extends RegionTarget {
  app: string;
  run_command: string;
  health_check: HealthCheck | null;
}

/** A regional instance's state: its apps' goals and a version that counts changes. */
export interface RegionalState {
  region: string;
  version: number;
  apps: Record<string, RegionalGoal>;
}

export const emptyRegional = (region: string): RegionalState => ({ region, version: 0, apps: {} });

/**
 * Follows the global goal: takes every app goal for this region whose generation is newer than
 * the one held. Pushes and re-reads may arrive in any order and any number of times: an older
 * or repeated snapshot changes nothing. Returns the apps that changed.
 */
export function applyGlobal(
  state: RegionalState,
  global: GlobalState,
): { state: RegionalState; changed: string[] } {
  const changed: string[] = [];
  const apps = { ...state.apps };
  for (const goal of Object.values(global.apps)) {
    const target = goal.regions[state.region];
    if (!target) continue;
    const held = apps[goal.app];
    if (held && held.generation >= target.generation) continue;
    apps[goal.app] = {
      app: goal.app,
      run_command: goal.run_command,
      health_check: goal.health_check,
      ...target,
    };
    changed.push(goal.app);
  }
  if (changed.length === 0) return { state, changed };
  return { state: { ...state, version: state.version + 1, apps }, changed };
}
