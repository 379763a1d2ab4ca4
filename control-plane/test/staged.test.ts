import { runDurableObjectAlarm } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { canaryBucket } from "../../protocol/goal.ts";
import { rolloutStub } from "../src/deployments/rollout.ts";
import { claimOne, manifestFor, queueBuild, registerApp } from "./fixtures.ts";
import { call, mintToken, resetDb, snapshot, testEnv } from "./helpers.ts";

const REGIONS = ["us-east", "eu-west", "ap-south"];
let admin: string;
let deployer: string;
let builder: string;
const relayTokens: Record<string, string> = {};

beforeAll(async () => {
  await resetDb();
  admin = await mintToken("admin");
  deployer = await mintToken("deployer");
  builder = await mintToken("builder");
  for (const r of REGIONS) relayTokens[r] = await mintToken("relay", { region: r });
});

async function deployableBuild(app: string): Promise<number> {
  const id = await queueBuild(deployer, app);
  const c = (await claimOne(builder))!;
  expect(c.id).toBe(id);
  await call("POST", `/v1/worker/builds/${id}/complete`, {
    token: builder,
    body: { lease_token: c.lease, manifest: manifestFor(c) },
  });
  return id;
}

/**
 * Six machines per region that do what agents do with a goal: run the canary build when their
 * bucket says so, else the goal's build; a build in `bad` fails its health check. They report
 * through the real relay subscription, as a relay aggregates them.
 */
class Fleet {
  sockets: Record<string, WebSocket> = {};
  running: Record<string, Record<string, number>> = {};
  /** Every build a machine of the region was ever told to run, healthy or not. */
  tried: Record<string, Set<number>> = {};
  bad = new Set<number>();

  constructor(readonly app: string) {}

  async connect(initial: number): Promise<void> {
    const { exports } = await import("cloudflare:workers");
    for (const region of REGIONS) {
      const res: Response = await (exports as any).default.fetch(
        `http://cp.test/v1/regions/${region}/subscribe`,
        {
          headers: { Upgrade: "websocket", Authorization: `Bearer ${relayTokens[region]}` },
        },
      );
      const ws = res.webSocket!;
      ws.accept();
      this.sockets[region] = ws;
      this.running[region] = Object.fromEntries(
        Array.from({ length: 6 }, (_, i) => [`${region}-m${i}`, initial]),
      );
    }
  }

  /** Every machine converges on its region's current goal, then the relays report. */
  async converge(): Promise<void> {
    for (const region of REGIONS) {
      const r = await call("GET", `/v1/regions/${region}/goal?wait_s=0`, {
        token: relayTokens[region]!,
      });
      const goal = r.body.goals
        .map((g: any) => JSON.parse(g.document))
        .find((g: any) => g.app === this.app);
      const machines = [];
      for (const id of Object.keys(this.running[region]!)) {
        let want = goal?.build_id ?? this.running[region]![id]!;
        if (goal?.canary && canaryBucket(id, goal.deployment_id) < goal.canary.percent)
          want = goal.canary.build_id;
        this.tried[region] ??= new Set();
        this.tried[region].add(want);
        const failed = this.bad.has(want);
        if (!failed) this.running[region]![id] = want;
        machines.push({
          machine_id: id,
          app: this.app,
          build_id: want,
          generation: goal?.generation ?? 0,
          state: failed ? "failed" : "healthy",
        });
      }
      this.sockets[region]!.send(
        JSON.stringify({ type: "status", relay_id: `relay-${region}`, machines }),
      );
    }
    await new Promise((r) => setTimeout(r, 30));
  }

  builds(region: string): number[] {
    return Object.values(this.running[region]!);
  }

  close(): void {
    for (const ws of Object.values(this.sockets)) ws.close();
  }
}

async function tick(id: number, fleet: Fleet, times = 1): Promise<any> {
  for (let i = 0; i < times; i++) {
    await fleet.converge();
    await runDurableObjectAlarm(rolloutStub(testEnv, id));
  }
  return (await call("GET", `/v1/deployments/${id}`, { token: deployer })).body;
}

const staged = (extra: Record<string, unknown> = {}) => ({
  type: "staged",
  canary: { percent: 50 },
  bake_s: 0,
  ...extra,
});

describe("staged rollouts", () => {
  it("refuses an impossible plan when the deployment is created, changing nothing", async () => {
    await registerApp(admin, "plans");
    const id = await deployableBuild("plans");
    const before = await snapshot();
    for (const strategy of [
      { type: "staged", regions: ["us-east", "mars-1", "eu-west", "ap-south"] },
      { type: "staged", regions: ["us-east", "eu-west"] },
      { type: "staged", regions: ["us-east", "us-east", "eu-west", "ap-south"] },
      { type: "staged", canary: { percent: 10, machines: 3 } },
      { type: "staged", canary: {} },
      { type: "staged", bake_s: -1 },
      { type: "canary-first" },
    ]) {
      const r = await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "plans", build_id: id, strategy },
      });
      expect(r.status, JSON.stringify(strategy)).toBe(400);
      expect(r.body.error.message).toBeTruthy();
    }
    expect(await snapshot()).toEqual(before);
  });

  it("goes canary → each region in order, and ends SUCCEEDED", async () => {
    await registerApp(admin, "calm");
    const a = await deployableBuild("calm");
    const b = await deployableBuild("calm");
    const fleet = new Fleet("calm");
    await fleet.connect(a);
    await call("POST", "/v1/deployments", { token: deployer, body: { app: "calm", build_id: a } });
    const d = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "calm", build_id: b, strategy: staged() },
      })
    ).body;
    expect(d.waves.map((w: any) => w.name)).toEqual([
      "canary in us-east",
      "us-east",
      "eu-west",
      "ap-south",
    ]);
    let view = await tick(d.id, fleet);
    // Canary: only some us-east machines moved; no other region did.
    const usEast = fleet.builds("us-east");
    expect(usEast.filter((x) => x === b).length).toBeGreaterThan(0);
    expect(usEast.filter((x) => x === a).length).toBeGreaterThan(0);
    expect(fleet.builds("eu-west").every((x) => x === a)).toBe(true);
    // The tick at which each region's first machine ran the new build: strictly in order.
    const movedAt: Record<string, number> = { "us-east": 0 };
    for (let i = 1; i <= 12 && view.status === "ROLLING"; i++) {
      view = await tick(d.id, fleet);
      for (const r of REGIONS) {
        if (movedAt[r] === undefined && fleet.builds(r).includes(b)) movedAt[r] = i;
      }
    }
    expect(view.status).toBe("SUCCEEDED");
    expect(view.waves.every((w: any) => w.status === "passed")).toBe(true);
    expect(Object.keys(movedAt).sort()).toEqual([...REGIONS].sort());
    expect(movedAt["us-east"]!).toBeLessThan(movedAt["eu-west"]!);
    expect(movedAt["eu-west"]!).toBeLessThan(movedAt["ap-south"]!);
    for (const r of REGIONS) expect(fleet.builds(r).every((x) => x === b)).toBe(true);
    fleet.close();
  });

  it("holds each wave for its bake time", async () => {
    await registerApp(admin, "baker");
    const a = await deployableBuild("baker");
    const b = await deployableBuild("baker");
    const fleet = new Fleet("baker");
    await fleet.connect(a);
    await call("POST", "/v1/deployments", { token: deployer, body: { app: "baker", build_id: a } });
    const d = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "baker", build_id: b, strategy: { type: "staged", bake_s: 2 } },
      })
    ).body;
    const view = await tick(d.id, fleet, 2);
    expect(view.waves[0]).toMatchObject({ name: "us-east", status: "baking" });
    expect(view.waiting).toMatch(/^baking us-east: [12] s left$/);
    expect(fleet.builds("eu-west").every((x) => x === a)).toBe(true);
    await new Promise((r) => setTimeout(r, 2100));
    const after = await tick(d.id, fleet);
    expect(after.waves[0].status).toBe("passed");
    expect(after.waves[1].status).not.toBe("pending");
    fleet.close();
  });

  it("rolls a build that fails health in the canary back by itself; no machine outside the canary ever runs it", async () => {
    await registerApp(admin, "bad");
    const a = await deployableBuild("bad");
    const b = await deployableBuild("bad");
    const fleet = new Fleet("bad");
    fleet.bad.add(b);
    await fleet.connect(a);
    await call("POST", "/v1/deployments", { token: deployer, body: { app: "bad", build_id: a } });
    const d = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "bad", build_id: b, strategy: staged() },
      })
    ).body;
    const view = await tick(d.id, fleet, 2);
    expect(view.status).toBe("ROLLED_BACK");
    expect(view.reason).toMatch(
      /^canary in us-east failed health: \d+\/\d+ machines; rolled back automatically$/,
    );
    for (const r of REGIONS) expect(fleet.builds(r).every((x) => x === a)).toBe(true);
    // The canary tried it (and failed); no machine of another region was ever told to.
    expect(fleet.tried["us-east"]!.has(b)).toBe(true);
    expect(fleet.tried["eu-west"]!.has(b)).toBe(false);
    expect(fleet.tried["ap-south"]!.has(b)).toBe(false);
    const goal = (await call("GET", "/v1/goal", { token: deployer })).body.apps.bad;
    for (const r of REGIONS) expect(goal.regions[r]).toMatchObject({ build_id: a, canary: null });
    expect(goal.generation).toBeGreaterThan(d.generation);
    fleet.close();
  });

  it("pause holds the rollout and resume continues it; abort reverts the waves done", async () => {
    await registerApp(admin, "hold");
    const a = await deployableBuild("hold");
    const b = await deployableBuild("hold");
    const fleet = new Fleet("hold");
    await fleet.connect(a);
    await call("POST", "/v1/deployments", { token: deployer, body: { app: "hold", build_id: a } });
    const d = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "hold", build_id: b, strategy: { type: "staged", bake_s: 0 } },
      })
    ).body;
    await tick(d.id, fleet, 1);
    const paused = await call("POST", `/v1/deployments/${d.id}/pause`, { token: deployer });
    expect(paused.status).toBe(200);
    expect(paused.body.waiting).toBe("paused by test-deployer");
    const held = await tick(d.id, fleet, 3);
    const wave = held.waves.findIndex((w: any) => w.status === "rolling" || w.status === "baking");
    expect(held.status).toBe("ROLLING");
    expect(fleet.builds("ap-south").every((x) => x === a)).toBe(true);
    await call("POST", `/v1/deployments/${d.id}/resume`, { token: deployer });
    const moved = await tick(d.id, fleet, 1);
    expect(
      moved.waves.findIndex((w: any) => w.status === "rolling" || w.status === "baking"),
    ).toBeGreaterThan(wave);
    const aborted = await call("POST", `/v1/deployments/${d.id}/abort`, { token: deployer });
    expect(aborted.body.status).toBe("ABORTED");
    await fleet.converge();
    for (const r of REGIONS) expect(fleet.builds(r).every((x) => x === a)).toBe(true);
    const again = await call("POST", `/v1/deployments/${d.id}/resume`, { token: deployer });
    expect(again.status).toBe(409);
    fleet.close();
  });

  it("a newer deployment supersedes one in progress, recorded explicitly", async () => {
    await registerApp(admin, "newer");
    const a = await deployableBuild("newer");
    const b = await deployableBuild("newer");
    const c = await deployableBuild("newer");
    const fleet = new Fleet("newer");
    await fleet.connect(a);
    await call("POST", "/v1/deployments", { token: deployer, body: { app: "newer", build_id: a } });
    const d1 = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "newer", build_id: b, strategy: staged() },
      })
    ).body;
    await tick(d1.id, fleet);
    const d2 = (
      await call("POST", "/v1/deployments", {
        token: deployer,
        body: { app: "newer", build_id: c },
      })
    ).body;
    const old = (await call("GET", `/v1/deployments/${d1.id}`, { token: deployer })).body;
    expect(old).toMatchObject({ status: "SUPERSEDED", superseded_by: d2.id });
    const done = await tick(d2.id, fleet, 2);
    expect(done.status).toBe("SUCCEEDED");
    for (const r of REGIONS) expect(fleet.builds(r).every((x) => x === c)).toBe(true);
    fleet.close();
  });
});
