import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { verifyGoal } from "../../protocol/goal.ts";
import { Verifier } from "../../protocol/signing.ts";
import { rolloutStub } from "../src/deployments/rollout.ts";
import type { GlobalState } from "../src/goal-state/core.ts";
import { globalStub, regionStub } from "../src/goal-state/stubs.ts";
import { claimOne, manifestFor, queueBuild, registerApp } from "./fixtures.ts";
import { call, db, mintToken, resetDb, snapshot, testEnv } from "./helpers.ts";

let admin: string;
let deployer: string;
let builder: string;
const relays: Record<string, string> = {};
let verifier: Verifier;

beforeAll(async () => {
  await resetDb();
  admin = await mintToken("admin");
  deployer = await mintToken("deployer");
  builder = await mintToken("builder");
  for (const r of ["us-east", "eu-west", "ap-south"])
    relays[r] = await mintToken("relay", { region: r });
  for (const app of ["shop", "blog", "race", "cart"]) await registerApp(admin, app);
  await registerApp(admin, "eushop", { regions: ["eu-west"] });
  verifier = await Verifier.fromPublicKeys(testEnv.TEST_SIGNING_PUBLIC_KEY!);
});

/** A SUCCEEDED, fully replicated build (an empty artifact replicates at once). */
async function deployableBuild(app: string): Promise<number> {
  const id = await queueBuild(deployer, app);
  const c = (await claimOne(builder))!;
  expect(c.id).toBe(id);
  const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
    token: builder,
    body: { lease_token: c.lease, manifest: manifestFor(c) },
  });
  expect(r.status).toBe(200);
  const detail = await call("GET", `/v1/builds/${id}`, { token: deployer });
  expect(detail.body.deployable).toBe(true);
  return id;
}

const deploy = (app: string, build_id: number) =>
  call("POST", "/v1/deployments", { token: deployer, body: { app, build_id } });

async function regionGoals(region: string, since = 0) {
  const r = await call("GET", `/v1/regions/${region}/goal?since=${since}&wait_s=0`, {
    token: relays[region]!,
  });
  expect(r.status).toBe(200);
  return r.body as { version: number; goals: { document: string; signature: string }[] };
}

describe("POST /v1/deployments", () => {
  it("refuses what cannot be deployed, with the reason, changing nothing", async () => {
    const queued = await queueBuild(deployer, "shop");
    await db.run(
      sql`UPDATE builds SET status = 'FAILED', failure_reason = 'canceled' WHERE id = ${queued}`,
    );
    const other = await deployableBuild("blog");
    const before = await snapshot();
    const cases: [unknown, number, string][] = [
      [{ app: "shop", build_id: queued }, 409, "not_deployable"],
      [{ app: "shop", build_id: other }, 409, "wrong_app"],
      [{ app: "shop", build_id: 999999 }, 404, "not_found"],
      [{ app: "nope", build_id: other }, 404, "not_found"],
      [{ app: "shop", build_id: "1" }, 400, "invalid_input"],
      [{ app: "shop", build_id: other, strategy: { type: "yolo" } }, 400, "invalid_input"],
      [{ app: "shop", build_id: other, extra: 1 }, 400, "invalid_input"],
    ];
    for (const [body, status, code] of cases) {
      const r = await call("POST", "/v1/deployments", { token: deployer, body });
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.message).toBeTruthy();
    }
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a build that is not in every region yet, saying which", async () => {
    const id = await deployableBuild("shop");
    await db.run(
      sql`UPDATE replications SET status = 'COPYING' WHERE build_id = ${id} AND region = 'ap-south'`,
    );
    const r = await deploy("shop", id);
    expect(r.status).toBe(409);
    expect(r.body.error.message).toMatch(/ap-south COPYING/);
    await db.run(sql`UPDATE replications SET status = 'COMPLETE' WHERE build_id = ${id}`);
  });

  it("sets a signed goal that reaches every region, and a subscribed relay hears of it", async () => {
    const ws = await subscribe("eu-west");
    const messages: any[] = [];
    ws.addEventListener("message", (e) => messages.push(JSON.parse(e.data as string)));
    const id = await deployableBuild("shop");
    const r = await deploy("shop", id);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ app: "shop", build_id: id, status: "ROLLING" });
    const generation = r.body.generation as number;
    const global = await call("GET", "/v1/goal", { token: builder });
    expect(global.body.apps.shop).toMatchObject({ generation, build_id: id });
    for (const region of ["us-east", "eu-west", "ap-south"]) {
      const { goals } = await regionGoals(region);
      const shop = goals.find((g) => JSON.parse(g.document).app === "shop")!;
      const verdict = await verifyGoal(verifier, shop, { region, now: new Date() });
      expect(verdict.ok, region).toBe(true);
      if (verdict.ok)
        expect(verdict.goal).toMatchObject({
          generation,
          build_id: id,
          run_command: "./app --port $PORT",
        });
    }
    await waitFor(() => messages.some((m) => m.type === "goal" && m.apps.shop === generation));
    ws.close();
  });

  it("long-polls a region's goal until it changes", async () => {
    const { version } = await regionGoals("ap-south");
    const waiting = call("GET", `/v1/regions/ap-south/goal?since=${version}&wait_s=10`, {
      token: relays["ap-south"]!,
    });
    await new Promise((r) => setTimeout(r, 300));
    const id = await deployableBuild("blog");
    await deploy("blog", id);
    const r = await waiting;
    expect(r.body.version).toBeGreaterThan(version);
    expect(r.body.goals.map((g: any) => JSON.parse(g.document).app)).toContain("blog");
  });

  it("a regional instance that missed a push catches up on its next re-read", async () => {
    const global = globalStub(testEnv);
    const state = await global.snapshot();
    const shop = state.apps.shop!;
    const missed: GlobalState = {
      generation: state.generation + 1,
      apps: {
        ...state.apps,
        shop: {
          ...shop,
          generation: state.generation + 1,
          regions: Object.fromEntries(
            Object.entries(shop.regions).map(([r, t]) => [
              r,
              { ...t, generation: state.generation + 1 },
            ]),
          ),
        },
      },
    };
    // Change global without pushing, as if every push had been lost.
    await runInDurableObject(global, async (_instance, ctx) => {
      const stored = (await ctx.storage.get<Record<string, unknown>>("state"))!;
      await ctx.storage.put("state", { ...stored, global: missed });
    });
    const parse = (g: { document: string }) => JSON.parse(g.document);
    const before = (await regionGoals("us-east")).goals.map(parse).find((g) => g.app === "shop");
    expect(before.generation).toBe(shop.generation);
    expect(await runDurableObjectAlarm(regionStub(testEnv, "us-east"))).toBe(true);
    const after = (await regionGoals("us-east")).goals.map(parse).find((g) => g.app === "shop");
    expect(after.generation).toBe(state.generation + 1);
  });

  it("orders racing deploys of one app: strictly increasing generations, one winner, coherent history", async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await deployableBuild("race"));
    const results = await Promise.all(ids.map((id) => deploy("race", id)));
    expect(results.every((r) => r.status === 201)).toBe(true);
    const list = await call("GET", "/v1/deployments?app=race", { token: builder });
    const rows = list.body.deployments as any[];
    const live = rows.filter((d) => d.status !== "SUPERSEDED");
    expect(live).toHaveLength(1);
    const winner = live[0];
    expect(winner.id).toBe(Math.max(...rows.map((d) => d.id)));
    const gens = rows.map((d) => d.generation).filter((g) => g !== null);
    expect(new Set(gens).size).toBe(gens.length);
    expect(Math.max(...gens)).toBe(winner.generation);
    for (const d of rows.filter((x) => x.status === "SUPERSEDED"))
      expect(d.superseded_by).toBeGreaterThan(d.id);
    const goal = await call("GET", "/v1/goal", { token: builder });
    expect(goal.body.apps.race.build_id).toBe(winner.build_id);
  });

  it("rolls back with a new, higher generation pointing at the previous build; an old goal replayed is refused", async () => {
    const a = await deployableBuild("blog");
    const b = await deployableBuild("blog");
    await deploy("blog", a);
    const first = (await regionGoals("eu-west")).goals.find(
      (g) => JSON.parse(g.document).app === "blog",
    )!;
    const second = await deploy("blog", b);
    expect(second.body.previous_build_id).toBe(a);
    const rolled = await call("POST", `/v1/deployments/${second.body.id}/rollback`, {
      token: deployer,
    });
    expect(rolled.status).toBe(201);
    expect(rolled.body).toMatchObject({ build_id: a, rollback_of: second.body.id });
    expect(rolled.body.generation).toBeGreaterThan(second.body.generation);
    const old = await call("GET", `/v1/deployments/${second.body.id}`, { token: builder });
    expect(old.body.status).toBe("ROLLED_BACK");
    const latest = (await regionGoals("eu-west")).goals.find(
      (g) => JSON.parse(g.document).app === "blog",
    )!;
    const applied = await verifyGoal(verifier, latest, { region: "eu-west", now: new Date() });
    expect(applied.ok && applied.goal.build_id).toBe(a);
    const replay = await verifyGoal(verifier, first, {
      region: "eu-west",
      now: new Date(),
      appliedGeneration: rolled.body.generation,
    });
    expect(replay).toMatchObject({ ok: false, reason: "stale-generation" });
    const missing = await call("POST", "/v1/deployments/999999/rollback", { token: deployer });
    expect(missing.status).toBe(404);
    const firstOfApp = (
      await call("GET", "/v1/deployments?app=blog", { token: builder })
    ).body.deployments.at(-1);
    const none = await call("POST", `/v1/deployments/${firstOfApp.id}/rollback`, {
      token: deployer,
    });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe("nothing_to_roll_back_to");
  });

  it("deploys of different apps are independent", async () => {
    const shop = await deployableBuild("shop");
    const blog = await deployableBuild("blog");
    const [r1, r2] = await Promise.all([deploy("shop", shop), deploy("blog", blog)]);
    expect([r1.status, r2.status]).toEqual([201, 201]);
    expect([r1.body.status, r2.body.status]).toEqual(["ROLLING", "ROLLING"]);
    const goal = await call("GET", "/v1/goal", { token: builder });
    expect(goal.body.apps.shop.build_id).toBe(shop);
    expect(goal.body.apps.blog.build_id).toBe(blog);
  });
});

describe("rollout progress", () => {
  it("shows per-region counts and a plain-words wait, and ends SUCCEEDED when every machine is healthy", async () => {
    const old = await deployableBuild("eushop");
    const id = await deployableBuild("eushop");
    const ws = await subscribe("eu-west");
    ws.send(JSON.stringify({ type: "hello", relay_id: "relay-eu-1", url: "ws://127.0.0.1:1" }));
    let generation = 1;
    const report = (states: [string, number, string][]) =>
      ws.send(
        JSON.stringify({
          type: "status",
          relay_id: "relay-eu-1",
          machines: states.map(([m, b, s]) => ({
            machine_id: m,
            app: "eushop",
            build_id: b,
            generation,
            state: s,
          })),
        }),
      );
    report([
      ["m1", old, "healthy"],
      ["m2", old, "healthy"],
      ["m3", old, "healthy"],
    ]);
    const d = (await deploy("eushop", id)).body;
    generation = d.generation;
    report([
      ["m1", id, "healthy"],
      ["m2", id, "downloading"],
      ["m3", old, "healthy"],
    ]);
    await waitFor(async () => {
      const r = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
      const eu = r.body.regions.find((x: any) => x.region === "eu-west");
      return eu.counts.healthy === 1 && eu.counts.downloading === 1 && eu.counts.pending === 1;
    });
    const mid = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
    expect(mid.body.waiting).toBe("waiting: 2 of 3 machines in eu-west still downloading");
    expect(mid.body.status).toBe("ROLLING");
    report([
      ["m1", id, "healthy"],
      ["m2", id, "healthy"],
      ["m3", id, "healthy"],
    ]);
    // Between the last report and the rollout's next step, the live counts and the live words
    // agree: no "still downloading" left over from the step before.
    await waitFor(async () => {
      const r = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
      return r.body.regions.find((x: any) => x.region === "eu-west").counts.healthy === 3;
    });
    const healthy = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
    if (healthy.body.status === "ROLLING") {
      expect(healthy.body.waiting).toBe("every machine is healthy; finishing on the next step");
    }
    await waitFor(async () => {
      await runDurableObjectAlarm(rolloutStub(testEnv, d.id));
      return (
        (await call("GET", `/v1/deployments/${d.id}`, { token: builder })).body.status ===
        "SUCCEEDED"
      );
    });
    const machines = await call("GET", "/v1/machines?region=eu-west&app=eushop", {
      token: builder,
    });
    expect(machines.body.machines.map((m: any) => m.machine_id).sort()).toEqual(["m1", "m2", "m3"]);
    ws.close();
  });
});

describe("failed machines after a deployment", () => {
  it("GET /v1/regions counts each region's machines by state and lists the failed ones with their reason", async () => {
    const ws = await subscribe("us-east");
    ws.send(JSON.stringify({ type: "hello", relay_id: "relay-us-9", url: null }));
    const detail =
      "the app's process exited with code 3 after it was healthy; 2 restarts since the release started";
    ws.send(
      JSON.stringify({
        type: "status",
        relay_id: "relay-us-9",
        machines: [
          { machine_id: "u1", app: "blog", build_id: 4, generation: 9, state: "healthy" },
          {
            machine_id: "u2",
            app: "blog",
            build_id: 4,
            generation: 9,
            state: "failed",
            detail,
            restarts: 2,
          },
        ],
      }),
    );
    let east: any;
    await waitFor(async () => {
      const r = await call("GET", "/v1/regions", { token: builder });
      east = r.body.regions.find((x: any) => x.name === "us-east");
      return east.failed.length === 1;
    });
    expect(east.machines).toEqual({
      reported: 2,
      unreachable: 0,
      states: { healthy: 1, failed: 1 },
    });
    expect(east.failed).toEqual([
      { machine_id: "u2", app: "blog", build_id: 4, detail, restarts: 2 },
    ]);
    const listed = await call("GET", "/v1/machines?region=us-east&app=blog", { token: builder });
    expect(listed.body.machines.find((m: any) => m.machine_id === "u2")).toMatchObject({
      state: "failed",
      detail,
      restarts: 2,
    });
    ws.close();
  });
});

describe("progress from several relays", () => {
  it("counts each machine once: from the relay it is connected to, not the one it left", async () => {
    const id = await deployableBuild("cart");
    const d = (await deploy("cart", id)).body;
    const a = await subscribe("ap-south");
    const b = await subscribe("ap-south");
    a.send(JSON.stringify({ type: "hello", relay_id: "relay-ap-1", url: "ws://127.0.0.1:1" }));
    b.send(JSON.stringify({ type: "hello", relay_id: "relay-ap-2", url: "ws://127.0.0.1:2" }));
    const machine = (machine_id: string, state: string, connected?: boolean) => ({
      machine_id,
      app: "cart",
      build_id: id,
      generation: d.generation,
      state,
      ...(connected === undefined ? {} : { connected }),
    });
    // m3 moved from relay 1 to relay 2: relay 1 still reports its last state, as away.
    const fromRelay1 = () =>
      a.send(
        JSON.stringify({
          type: "status",
          relay_id: "relay-ap-1",
          machines: [
            machine("m1", "healthy"),
            machine("m2", "healthy"),
            machine("m3", "downloading", false),
          ],
        }),
      );
    fromRelay1();
    b.send(
      JSON.stringify({
        type: "status",
        relay_id: "relay-ap-2",
        machines: [machine("m3", "healthy", true), machine("m4", "downloading", true)],
      }),
    );
    let ap: any;
    await waitFor(async () => {
      const r = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
      ap = r.body.regions.find((x: any) => x.region === "ap-south");
      return ap.machines === 4;
    });
    expect(ap.counts).toMatchObject({ healthy: 3, downloading: 1, pending: 0, failed: 0 });
    // Relay 1 reporting again (later than relay 2) does not bring m3's old state back.
    fromRelay1();
    await new Promise((r) => setTimeout(r, 300));
    const again = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
    const ap2 = again.body.regions.find((x: any) => x.region === "ap-south");
    expect(ap2.machines).toBe(4);
    expect(ap2.counts).toMatchObject({ healthy: 3, downloading: 1 });
    const listed = await call("GET", "/v1/machines?region=ap-south&app=cart", { token: builder });
    const m3 = listed.body.machines.filter((m: any) => m.machine_id === "m3");
    expect(m3.map((m: any) => [m.relay_id, m.state])).toEqual([["relay-ap-2", "healthy"]]);
    a.close();
    b.close();
  });

  it("aggregated summaries: a failing machine's reason reaches the deployment view; a machine that moved is forgotten by its old relay", async () => {
    const id = await deployableBuild("cart");
    const d = (await deploy("cart", id)).body;
    const a = await subscribe("ap-south");
    const b = await subscribe("ap-south");
    const toA: any[] = [];
    a.addEventListener("message", (e) => {
      toA.push(JSON.parse(String(e.data)));
    });
    const entry = (state: string, n: number) => ({
      build_id: id,
      generation: d.generation,
      state,
      canary: false,
      n,
    });
    const summary = (relay_id: string, more: object) =>
      JSON.stringify({
        type: "summary",
        relay_id,
        machines: 0,
        apps: [],
        problems: [],
        problems_total: 0,
        ...more,
      });
    a.send(
      summary("relay-ap-1", {
        machines: 3,
        apps: [
          {
            app: "cart",
            goal_generation: d.generation,
            counts: [entry("healthy", 1), entry("failed", 1)],
            away: 1,
          },
        ],
        problems: [
          {
            machine_id: "m2",
            app: "cart",
            build_id: id,
            generation: d.generation,
            state: "failed",
            detail: "exited with code 3; 2 restarts",
            restarts: 2,
            problem: "failed",
          },
          {
            machine_id: "m3",
            app: "cart",
            build_id: id,
            generation: d.generation,
            state: "downloading",
            detail: null,
            connected: false,
            problem: "away",
          },
        ],
        problems_total: 2,
      }),
    );
    // m3 said hello to relay 2: relay 1 is told to forget it (it still holds it as away).
    b.send(
      summary("relay-ap-2", {
        machines: 1,
        apps: [
          {
            app: "cart",
            goal_generation: d.generation,
            counts: [entry("healthy", 1)],
            away: 0,
          },
        ],
        arrived: ["m3"],
      }),
    );
    await waitFor(() => toA.some((m) => m.type === "forget"));
    expect(toA.find((m) => m.type === "forget")).toEqual({ type: "forget", machine_ids: ["m3"] });
    let ap: any;
    await waitFor(async () => {
      const r = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
      ap = r.body.regions.find((x: any) => x.region === "ap-south");
      return ap.machines === 4;
    });
    expect(ap.counts).toMatchObject({ healthy: 2, failed: 1, unreachable: 1 });
    expect(ap.problems[0]).toEqual({
      machine_id: "m2",
      problem: "failed",
      state: "failed",
      build_id: id,
      detail: "exited with code 3; 2 restarts",
      restarts: 2,
    });
    expect(ap.waiting).toBe("1 of 3 machines in ap-south failed health");
    // Relay 1 forgot m3: its next summary no longer counts it.
    a.send(
      summary("relay-ap-1", {
        machines: 2,
        apps: [
          {
            app: "cart",
            goal_generation: d.generation,
            counts: [entry("healthy", 1), entry("failed", 1)],
            away: 0,
          },
        ],
        problems: [],
        problems_total: 1,
      }),
    );
    await waitFor(async () => {
      const r = await call("GET", `/v1/deployments/${d.id}`, { token: builder });
      ap = r.body.regions.find((x: any) => x.region === "ap-south");
      return ap.machines === 3;
    });
    expect(ap.counts).toMatchObject({ healthy: 2, failed: 1, unreachable: 0 });
    a.close();
    b.close();
  });
});

describe("POST /v1/agents/enroll", () => {
  it("trades the enrollment secret for an agent token of one region", async () => {
    const bad = await call("POST", "/v1/agents/enroll", {
      token: "wrong",
      body: { region: "eu-west", machine_id: "m-1" },
    });
    expect(bad.status).toBe(401);
    const none = await call("POST", "/v1/agents/enroll", {
      body: { region: "eu-west", machine_id: "m-1" },
    });
    expect(none.status).toBe(401);
    const r = await fetchWith("test-enrollment-secret", { region: "eu-west", machine_id: "m-1" });
    expect(r.status).toBe(201);
    const agent = r.body.token as string;
    expect((await call("GET", "/v1/regions/eu-west/goal?wait_s=0", { token: agent })).status).toBe(
      200,
    );
    expect((await call("GET", "/v1/regions/us-east/goal?wait_s=0", { token: agent })).status).toBe(
      403,
    );
    expect((await call("GET", "/v1/builds", { token: "test-enrollment-secret" })).status).toBe(401);
    const badRegion = await fetchWith("test-enrollment-secret", {
      region: "mars-1",
      machine_id: "m-1",
    });
    expect(badRegion.status).toBe(400);
  });
});

async function fetchWith(secret: string, body: unknown) {
  return call("POST", "/v1/agents/enroll", {
    body,
    headers: { Authorization: `Bearer ${secret}` },
  });
}

async function subscribe(region: string): Promise<WebSocket> {
  const { exports } = await import("cloudflare:workers");
  const res: Response = await (exports as any).default.fetch(
    `http://cp.test/v1/regions/${region}/subscribe`,
    {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${relays[region]}` },
    },
  );
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  return ws;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
