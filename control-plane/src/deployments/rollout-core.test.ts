import { describe, expect, it } from "vitest";
import { aggregateMachines, type MachineReport } from "../../../protocol/machine-status.ts";
import type { RelayAppView } from "../goal-state/relay-status.ts";
import {
  advance,
  initialState,
  type Observation,
  type RolloutState,
  waitingReason,
} from "./rollout-core.ts";
import { planFor, type Strategy } from "./strategy.ts";

const APP = "web";
const BUILD = 7;

function plan(strategy: Strategy, targets: string[]): RolloutState {
  const p = planFor(strategy, targets);
  if (!p.ok) throw new Error(p.problems.join("; "));
  return initialState(p.plan);
}

type Machine = MachineReport & { reachable?: boolean };

function machine(
  region: string,
  i: number,
  fields: Partial<Machine> & Pick<Machine, "generation">,
): Machine {
  return {
    machine_id: `${region}-m${i}`,
    app: APP,
    build_id: BUILD,
    state: "healthy",
    detail: null,
    ...fields,
  };
}

/**
 * What the region's relay would report of these machines: one relay per region, holding the
 * app's goal at `goalGeneration` (a canary of `canaryPercent`); unreachable machines are a
 * second relay gone silent.
 */
function observe(
  machines: Record<string, Machine[]>,
  o: {
    reportedAt?: number;
    hasPrevious?: boolean;
    goalGeneration?: number;
    canaryPercent?: number;
  } = {},
): Observation {
  const goals = new Map([
    [
      APP,
      {
        generation: o.goalGeneration ?? 100,
        deployment_id: 1,
        canary: o.canaryPercent === undefined ? null : { percent: o.canaryPercent },
      },
    ],
  ]);
  const view = (ms: Machine[], stale: boolean): RelayAppView[] => {
    const agg = aggregateMachines(ms, goals).apps[0];
    if (!agg) return [];
    return [{ relay_id: stale ? "silent" : "live", stale, at: o.reportedAt ?? 1_000_000, ...agg }];
  };
  return {
    app: APP,
    deploymentId: 1,
    buildId: BUILD,
    hasPrevious: o.hasPrevious ?? false,
    counts: Object.fromEntries(
      Object.entries(machines).map(([r, ms]) => [
        r,
        [
          ...view(
            ms.filter((m) => m.reachable !== false),
            false,
          ),
          ...view(
            ms.filter((m) => m.reachable === false),
            true,
          ),
        ],
      ]),
    ),
    relayReports: Object.fromEntries(
      Object.keys(machines).map((r) => [r, [o.reportedAt ?? 1_000_000]]),
    ),
  };
}

/** Runs the first step (start-wave) and records the generation the control plane gave it. */
function started(state: RolloutState, obs: Observation, generation: number): RolloutState {
  const first = advance(state, obs, 100);
  expect(first.actions[0]?.type).toBe("start-wave");
  first.state.waves[first.state.wave]!.generation = generation;
  return first.state;
}

describe("advance() never passes a wave on silence", () => {
  it("waits while no machine in a target region reports the app, then fails the wave at its deadline", () => {
    const state = plan({ type: "all-at-once", deadline_s: 10 }, ["us-east", "eu-west"]);
    const obs = observe({
      "us-east": [machine("us-east", 0, { generation: 5 })],
      "eu-west": [],
    });
    const s = started(state, obs, 5);
    const waiting = advance(s, obs, 5_000);
    expect(waiting.actions).toEqual([]);
    expect(waiting.state.waves[0]!.status).toBe("rolling");
    expect(waitingReason(waiting.state, obs, 5_000)).toBe(
      "waiting: no machine in eu-west reports web yet",
    );
    const late = advance(waiting.state, obs, 100 + 10_001);
    expect(late.state.waves[0]!.status).toBe("failed");
    expect(late.actions).toEqual([
      {
        type: "end",
        status: "FAILED",
        reason:
          "all regions not healthy within 10 s: no machine in eu-west reports web; no previous build to roll back to",
      },
    ]);
  });

  it("with a previous build, the silent wave's deadline reverts what the rollout touched", () => {
    const state = plan({ type: "staged", bake_s: 0, wave_deadline_s: 10 }, ["us-east"]);
    const obs = observe({ "us-east": [] }, { hasPrevious: true });
    const s = started(state, obs, 3);
    const late = advance(s, obs, 100 + 10_001);
    expect(late.actions.map((a) => a.type)).toEqual(["revert", "end"]);
    expect(late.actions[1]).toMatchObject({
      status: "ROLLED_BACK",
      reason:
        "us-east not healthy within 10 s: no machine in us-east reports web; rolled back automatically",
    });
  });

  it("says how many machines went quiet when every machine of the region is unreachable", () => {
    const state = plan({ type: "all-at-once" }, ["eu-west"]);
    const quiet = [0, 1].map((i) => machine("eu-west", i, { generation: 4, reachable: false }));
    const obs = observe({ "eu-west": quiet });
    const s = started(state, obs, 4);
    expect(advance(s, obs, 5_000).state.waves[0]!.status).toBe("rolling");
    expect(waitingReason(s, obs, 5_000)).toBe(
      "waiting: no machine in eu-west reports web yet (2 unreachable)",
    );
  });

  it("counts a machine healthy on the build only once it reports the wave's generation", () => {
    const state = plan({ type: "all-at-once" }, ["us-east"]);
    // Already healthy on build 7 from an earlier goal (generation 2): old news for generation 9.
    const before = observe({ "us-east": [machine("us-east", 0, { generation: 2 })] });
    const s = started(state, before, 9);
    expect(advance(s, before, 5_000).state.waves[0]!.status).toBe("rolling");
    const after = observe({ "us-east": [machine("us-east", 0, { generation: 9 })] });
    const passed = advance(s, after, 5_000);
    expect(passed.actions).toEqual([
      { type: "end", status: "SUCCEEDED", reason: "every wave passed its health gate" },
    ]);
  });

  it("a failure reported for an older generation does not fail the new wave", () => {
    const state = plan({ type: "all-at-once" }, ["us-east"]);
    const obs = observe({
      "us-east": [machine("us-east", 0, { generation: 2, state: "failed" })],
    });
    const s = started(state, obs, 9);
    const next = advance(s, obs, 5_000);
    expect(next.actions).toEqual([]);
    expect(next.state.waves[0]!.status).toBe("rolling");
  });

  it("a canary share that holds none of the region's machines waits and says so", () => {
    const state = plan({ type: "staged", canary: { percent: 1 }, wave_deadline_s: 10 }, [
      "us-east",
    ]);
    // Bucket of "us-east-m0" for deployment 1 is well above 1: nobody is in the canary.
    const obs = observe(
      { "us-east": [machine("us-east", 0, { generation: 3 })] },
      { canaryPercent: 1 },
    );
    const first = advance(state, obs, 100);
    first.state.waves[0]!.generation = 3;
    first.state.waves[0]!.percent = 1;
    expect(waitingReason(first.state, obs, 5_000)).toBe(
      "waiting: no machine in us-east falls in the canary in us-east",
    );
    const late = advance(first.state, obs, 100 + 10_001);
    expect(late.actions[0]).toMatchObject({ type: "end", status: "FAILED" });
  });
});

describe("advance() reads the relays' counts", () => {
  it("does not pass a wave while a relay still counts under an older goal", () => {
    const state = plan({ type: "all-at-once" }, ["us-east"]);
    const healthy = { "us-east": [machine("us-east", 0, { generation: 9 })] };
    const s = started(state, observe(healthy, { goalGeneration: 8 }), 9);
    expect(advance(s, observe(healthy, { goalGeneration: 8 }), 5_000).actions).toEqual([]);
    expect(advance(s, observe(healthy, { goalGeneration: 9 }), 5_000).actions).toEqual([
      { type: "end", status: "SUCCEEDED", reason: "every wave passed its health gate" },
    ]);
  });

  it("a canary wave counts only the machines its relays put in the canary share", () => {
    const state = plan({ type: "staged", canary: { percent: 50 }, bake_s: 0 }, ["us-east"]);
    const ms = Array.from({ length: 8 }, (_, i) => machine("us-east", i, { generation: 4 }));
    // Every machine outside the canary still runs the old build: it does not hold the wave.
    const obs = (canaryState: "healthy" | "failed") =>
      observe(
        {
          "us-east": ms.map((m) => ({ ...m, state: canaryState })),
        },
        { canaryPercent: 50, goalGeneration: 4 },
      );
    const first = advance(state, obs("healthy"), 100);
    first.state.waves[0]!.generation = 4;
    first.state.waves[0]!.percent = 50;
    const next = advance(first.state, obs("healthy"), 5_000);
    expect(next.state.waves[0]!.status).toBe("passed");
    const bad = advance(first.state, obs("failed"), 5_000);
    expect(bad.actions.at(-1)).toMatchObject({ type: "end", status: "FAILED" });
    expect((bad.actions.at(-1) as { reason: string }).reason).toMatch(
      /^canary in us-east failed health: (\d+)\/\1 machines;/,
    );
  });
});
