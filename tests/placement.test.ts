/**
 * Step 12 with real processes: placement. The local stack, one relay and three agents in
 * us-east, two labelled pool=web and one pool=api; an app placed on pool=web. In order:
 * - a deployment runs the app on the web machines only, and counts two machines;
 * - a placement that matches no machine is refused at creation, naming the region and what is
 *   there; a refused change of the app changes nothing;
 * - re-placing the app on pool=api moves it at the next deployment: the web machines stop it
 *   and remove its files;
 * - a canary of one machine counts placed machines only;
 * - undeploy stops it everywhere; delete is refused until then.
 * KEEP_TEST_DIR=1 keeps the work directory (every process's log is there as <name>.log).
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canaryBucket } from "../protocol/goal.ts";
import {
  api as call,
  type DenoProcess,
  enrollmentSecret,
  type Json,
  must,
  publishBuild,
  servedBuild,
  startAgent,
  startRelay,
  testArtifact,
  until,
} from "./support/relay-agent.ts";
import { type Stack, startStack } from "./support/stack.ts";

const APP = "place-demo";
const REGION = "us-east";
const MACHINES = [
  { name: "place-web1", labels: ["--label", "pool=web"] },
  { name: "place-web2", labels: ["--label", "pool=web", "--label", "zone=b"] },
  { name: "place-api1", labels: ["--label", "pool=api"] },
] as const;

let stack: Stack;
let work: string;
const procs: DenoProcess[] = [];
const agents: { name: string; proc: DenoProcess; appPort: number }[] = [];
const builds = { a: 0, b: 0, c: 0 };

const admin = () => stack.tokens.admin;
const deployment = (id: number) =>
  must(stack, "GET", `/v1/deployments/${id}`, { token: stack.tokens.deployer });
const deploy = (build_id: number, strategy?: unknown) =>
  must(stack, "POST", "/v1/deployments", {
    token: stack.tokens.deployer,
    body: { app: APP, build_id, ...(strategy ? { strategy } : {}) },
  });
const served = () => Promise.all(agents.map((a) => servedBuild(a.appPort)));

async function ended(id: number, ms = 90_000): Promise<Json> {
  return until(
    `deployment ${id} ending`,
    async () => {
      const d = await deployment(id);
      return d.status === "ROLLING" ? null : d;
    },
    ms,
  );
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-placement-"));
  stack = await startStack();
  const secret = await enrollmentSecret(stack);
  await must(stack, "POST", "/v1/applications", {
    token: admin(),
    body: {
      name: APP,
      repo_url: `file:///srv/git/${APP}.git`,
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${APP}`,
      health_check: { type: "http", path: "/healthz", port: 8080 },
      regions: [REGION],
      placement: { labels: { pool: "web" } },
    },
  });
  for (const [key, seed] of [
    ["a", 31],
    ["b", 32],
    ["c", 33],
  ] as const) {
    builds[key] = (
      await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 16 * 1024, seed }))
    ).buildId;
  }
  const relay = await startRelay(stack, { region: REGION, name: "relay-place", work });
  procs.push(relay.proc);
  for (const m of MACHINES) {
    const a = await startAgent(stack, {
      region: REGION,
      name: m.name,
      work,
      relay: relay.url,
      secret,
      extra: ["--health-timeout-s", "5", ...m.labels],
    });
    agents.push({ name: m.name, ...a });
  }
  // Every agent said hello with its labels before the first deployment is judged.
  await until("three machines by label", async () => {
    const r = await must(stack, "GET", `/v1/machines?region=${REGION}`, { token: admin() });
    return r.relays.some((x: Json) => x.machines === 3);
  });
}, 240_000);

afterAll(async () => {
  for (const a of agents) await a.proc.stop();
  for (const p of procs.reverse()) await p.stop();
  await stack?.stop();
  if (stack) await rm(stack.dataDir, { recursive: true, force: true });
  if (!process.env.KEEP_TEST_DIR) await rm(work, { recursive: true, force: true });
});

describe("placement", () => {
  it("an app placed on pool=web runs on the web machines only, and counts those", async () => {
    const d = await deploy(builds.a);
    const done = await ended(d.id);
    expect(done.status).toBe("SUCCEEDED");
    const us = done.regions.find((r: Json) => r.region === REGION);
    expect(us.machines).toBe(2);
    expect(us.counts.healthy).toBe(2);
    expect(await served()).toEqual([builds.a, builds.a, null]);
    const listed = await must(stack, "GET", `/v1/machines?region=${REGION}&app=${APP}`, {
      token: admin(),
    });
    expect(listed.machines.map((m: Json) => [m.machine_id, m.labels, m.state]).sort()).toEqual([
      ["place-web1", { pool: "web" }, "healthy"],
      ["place-web2", { pool: "web", zone: "b" }, "healthy"],
    ]);
  });

  it("a placement that matches no machine is refused at creation; a refused change changes nothing", async () => {
    const bad = await call(stack, "PATCH", `/v1/applications/${APP}`, {
      token: admin(),
      body: { placement: { labels: { pool: "gpu" } }, regions: ["mars-1"] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/unknown regions mars-1/);
    const unchanged = await must(stack, "GET", `/v1/applications/${APP}`, { token: admin() });
    expect(unchanged.placement).toEqual({ labels: { pool: "web" } });
    await must(stack, "PATCH", `/v1/applications/${APP}`, {
      token: admin(),
      body: { placement: { labels: { pool: "gpu" } } },
    });
    const refused = await call(stack, "POST", "/v1/deployments", {
      token: stack.tokens.deployer,
      body: { app: APP, build_id: builds.b },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("no_placed_machines");
    expect(refused.body.error.message).toMatch(
      /no connected machine in us-east carries pool=gpu \(machines there: .*pool=web ×1.*\)/,
    );
    // Nothing moved: the web machines still run build a.
    expect(await served()).toEqual([builds.a, builds.a, null]);
  });

  it("re-placing on pool=api moves the app at the next deployment: the web machines stop it and remove it", async () => {
    await must(stack, "PATCH", `/v1/applications/${APP}`, {
      token: admin(),
      body: { placement: { labels: { pool: "api" } } },
    });
    const d = await deploy(builds.b);
    const done = await ended(d.id);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.regions.find((r: Json) => r.region === REGION).machines).toBe(1);
    await until("the web machines stopped the app", async () => {
      const s = await served();
      return s[0] === null && s[1] === null && s[2] === builds.b;
    });
    expect(await exists(join(work, "place-web1", "apps", APP))).toBe(false);
    expect(await exists(join(work, "place-api1", "apps", APP))).toBe(true);
  });

  it("a canary of one machine is sized over the placed machines only", async () => {
    await must(stack, "PATCH", `/v1/applications/${APP}`, {
      token: admin(),
      body: { placement: { labels: { pool: "web" } } },
    });
    const d = await deploy(builds.c, { type: "staged", canary: { machines: 1 }, bake_s: 1 });
    const done = await ended(d.id);
    expect(done.status).toBe("SUCCEEDED");
    const low = Math.min(canaryBucket("place-web1", d.id), canaryBucket("place-web2", d.id));
    expect(done.waves[0].percent).toBe(low + 1);
    await until("the app back on the web machines only", async () => {
      const s = await served();
      return s[0] === builds.c && s[1] === builds.c && s[2] === null;
    });
  });

  it("undeploy stops the app everywhere; delete is refused until then", async () => {
    const early = await call(stack, "DELETE", `/v1/applications/${APP}`, { token: admin() });
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe("app_deployed");
    const u = await must(stack, "POST", `/v1/applications/${APP}/undeploy`, {
      token: stack.tokens.deployer,
    });
    expect(u.regions).toEqual([REGION]);
    await until("no machine runs the app", async () => (await served()).every((b) => b === null));
    const listed = await must(stack, "GET", `/v1/machines?region=${REGION}&app=${APP}`, {
      token: admin(),
    });
    await until("no machine reports the app", async () => {
      const l = await must(stack, "GET", `/v1/machines?region=${REGION}&app=${APP}`, {
        token: admin(),
      });
      return l.machines.length === 0;
    });
    expect(listed.next_cursor).toBeNull();
    const again = await call(stack, "POST", `/v1/applications/${APP}/undeploy`, {
      token: stack.tokens.deployer,
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("not_deployed");
    const gone = await must(stack, "DELETE", `/v1/applications/${APP}`, { token: admin() });
    expect(gone).toMatchObject({ deleted: APP, builds: 3, deployments: 3 });
    const missing = await call(stack, "GET", `/v1/applications/${APP}`, { token: admin() });
    expect(missing.status).toBe(404);
  });
});
