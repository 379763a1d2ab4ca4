/**
 * Step 11 with real processes: what the system says about a machine is what runs there. The
 * local stack, one relay and three agents in us-east (ap-south has none), builds published
 * through the API. In order:
 * - a foreign listener that answers 200 on every path holds one agent's app port: that machine
 *   fails naming the holder, a staged rollout's canary fails there, and no other machine is
 *   told to run the build;
 * - an app that crashes during bake and cannot restart makes its machine failed within 5 s, and
 *   the deployment rolls back by itself;
 * - after a deployment ended, a crash is still state: the region and the machine list show the
 *   failed machine with its reason until a restart stayed healthy;
 * - a deployment to a region where no machine reports the app waits, saying so, and fails at
 *   its deadline; it never says SUCCEEDED.
 * KEEP_TEST_DIR=1 keeps the work directory (every process's log is there as <name>.log).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canaryBucket, type GoalDocument, targetOf } from "../protocol/goal.ts";
import {
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

const APP = "truth-demo";
const WIDE = "truth-wide";
const REGION = "us-east";
const AGENT_EXTRA = ["--health-timeout-s", "5", "--healthy-settle-s", "2"];

let stack: Stack;
let work: string;
let secret: string;
let relayUrl: string;
let relayToken: string;
const procs: DenoProcess[] = [];
const agents: { name: string; proc: DenoProcess; appPort: number }[] = [];
const builds = { a: 0, b: 0, c: 0 };
let squatter: Server | null = null;

const deployment = (id: number) =>
  must(stack, "GET", `/v1/deployments/${id}`, { token: stack.tokens.deployer });
const deploy = (app: string, build_id: number, strategy?: unknown) =>
  must(stack, "POST", "/v1/deployments", {
    token: stack.tokens.deployer,
    body: { app, build_id, ...(strategy ? { strategy } : {}) },
  });
const machines = async (app = APP): Promise<Json[]> =>
  (
    await must(stack, "GET", `/v1/machines?region=${REGION}&app=${app}`, {
      token: stack.tokens.deployer,
    })
  ).machines;
const machine = async (name: string, app = APP) =>
  (await machines(app)).find((m) => m.machine_id === name);
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

/** The app's process on `port` (the pid its GET / answers with). */
async function appPid(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/`);
  return ((await r.json()) as { pid: number }).pid;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-truth-"));
  stack = await startStack();
  secret = await enrollmentSecret(stack);
  for (const [name, regions] of [
    [APP, [REGION]],
    [WIDE, [REGION, "ap-south"]],
  ] as const) {
    await must(stack, "POST", "/v1/applications", {
      token: stack.tokens.admin,
      body: {
        name,
        repo_url: `file:///srv/git/${name}.git`,
        build_command: "true",
        artifact_path: "out/app",
        run_command: `./${name}`,
        health_check: { type: "http", path: "/healthz", port: 8080 },
        regions,
      },
    });
  }
  for (const [key, seed] of [
    ["a", 21],
    ["b", 22],
    ["c", 23],
  ] as const) {
    builds[key] = (
      await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 32 * 1024, seed }))
    ).buildId;
  }
  const relay = await startRelay(stack, { region: REGION, name: "relay-truth", work });
  procs.push(relay.proc);
  relayUrl = relay.url;
  relayToken = (
    await must(stack, "POST", "/v1/tokens", {
      token: stack.tokens.admin,
      body: { name: "truth goal reader", role: "relay", region: REGION },
    })
  ).token;
  for (let i = 0; i < 3; i++) {
    const name = `truth-m${i}`;
    const a = await startAgent(stack, {
      region: REGION,
      name,
      work,
      relay: relayUrl,
      secret,
      extra: AGENT_EXTRA,
    });
    agents.push({ name, ...a });
  }
  const first = await deploy(APP, builds.a);
  expect((await ended(first.id)).status).toBe("SUCCEEDED");
  expect(await served()).toEqual([builds.a, builds.a, builds.a]);
}, 240_000);

afterAll(async () => {
  for (const a of agents) await a.proc.stop();
  for (const p of procs.reverse()) await p.stop();
  await new Promise<void>((resolve) => (squatter ? squatter.close(() => resolve()) : resolve()));
  await stack?.stop();
  if (stack) await rm(stack.dataDir, { recursive: true, force: true });
  if (!process.env.KEEP_TEST_DIR) await rm(work, { recursive: true, force: true });
});

describe("machine state is what runs", () => {
  it("a foreign process on an app's port: the machine fails naming it, the canary fails there, nobody else is told to run the build", async () => {
    // The next deployment's canary of one machine is the agent with the lowest bucket: hold
    // its port with a process that is not the agent's app, as an old instance left running.
    const newest = (
      await must(stack, "GET", "/v1/deployments?limit=1", { token: stack.tokens.deployer })
    ).deployments[0].id as number;
    const nextId = newest + 1;
    const x = [...agents].sort(
      (p, q) => canaryBucket(p.name, nextId) - canaryBucket(q.name, nextId),
    )[0]!;
    await x.proc.stop();
    squatter = createServer((_req, res) => res.end(JSON.stringify({ build: 999_999 })));
    await new Promise<void>((resolve) => squatter!.listen(x.appPort, "127.0.0.1", resolve));
    const restarted = await startAgent(stack, {
      region: REGION,
      name: x.name,
      work,
      relay: relayUrl,
      secret,
      extra: AGENT_EXTRA,
      appPort: x.appPort,
    });
    x.proc = restarted.proc;
    const holder = new RegExp(
      `port ${x.appPort} is held by pid ${process.pid} \\(.*\\), not by this agent's app`,
    );
    const before = await until("the squatted machine failed", async () => {
      const m = await machine(x.name);
      return m?.state === "failed" && holder.test(m.detail ?? "") ? m : null;
    });
    expect(before.build_id).toBe(builds.a);

    const d = await deploy(APP, builds.b, { type: "staged", canary: { machines: 1 }, bake_s: 1 });
    expect(d.id).toBe(nextId);
    const told = new Set<string>();
    const healthyOnX: boolean[] = [];
    const end = await until(
      "the canary failing",
      async () => {
        const goal = await must(stack, "GET", `/v1/regions/${REGION}/goal?wait_s=0`, {
          token: relayToken,
        });
        for (const g of goal.goals) {
          const doc = JSON.parse(g.document) as GoalDocument;
          if (doc.app !== APP) continue;
          for (const a of agents) if (targetOf(doc, a.name).build_id === builds.b) told.add(a.name);
        }
        const m = await machine(x.name);
        healthyOnX.push(m?.state === "healthy" && m.build_id === builds.b);
        const now = await deployment(d.id);
        return now.status === "ROLLING" ? null : now;
      },
      90_000,
    );
    expect(end.status).toBe("ROLLED_BACK");
    expect(end.reason).toBe(
      "canary in us-east failed health: 1/1 machines; rolled back automatically",
    );
    expect([...told]).toEqual([x.name]);
    expect(healthyOnX.some(Boolean)).toBe(false);
    const failed = await machine(x.name);
    expect(failed.state).toBe("failed");
    expect(failed.detail).toMatch(holder);
    // The others never ran b; the squatter still answers on x's port (nothing killed it).
    const others = agents.filter((a) => a !== x);
    expect(await Promise.all(others.map((a) => servedBuild(a.appPort)))).toEqual([
      builds.a,
      builds.a,
    ]);
    expect(await servedBuild(x.appPort)).toBe(999_999);

    // The squatter goes: the next deployment brings x back.
    await new Promise<void>((resolve) => squatter!.close(() => resolve()));
    squatter = null;
    const again = await deploy(APP, builds.a);
    expect((await ended(again.id)).status).toBe("SUCCEEDED");
    expect(await served()).toEqual([builds.a, builds.a, builds.a]);
  }, 200_000);

  it("an app that crashes during bake and cannot restart: failed within 5 s, and the deployment rolls back by itself", async () => {
    const d = await deploy(APP, builds.c, { type: "staged", bake_s: 120 });
    await until(
      "the wave baking",
      async () => (await deployment(d.id)).waves?.[0]?.status === "baking",
      60_000,
    );
    const y = agents[1]!;
    const pid = await appPid(y.appPort);
    await writeFile(
      join(work, y.name, "apps", APP, "releases", String(builds.c), "no-restart"),
      "",
    );
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");
    const m = await until("y failed in GET /v1/machines", async () => {
      const now = await machine(y.name);
      return now?.state === "failed" && now.build_id === builds.c ? now : null;
    });
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(m.detail).toMatch(
      /^the app's process (was killed by SIGKILL|exited with code 137) after it was healthy; /,
    );
    const end = await ended(d.id, 60_000);
    expect(end.status).toBe("ROLLED_BACK");
    expect(end.reason).toBe("us-east failed health: 1/3 machines; rolled back automatically");
    await until(
      "every agent healthy on a again",
      async () =>
        (await machines()).every((x) => x.state === "healthy" && x.build_id === builds.a) &&
        (await served()).every((b) => b === builds.a),
      60_000,
    );
  }, 150_000);

  it("after a deployment ended, a crash loop is state: the region and the machine list show it until a restart stayed healthy", async () => {
    const z = agents[2]!;
    const marker = join(work, z.name, "apps", APP, "releases", String(builds.a), "no-restart");
    await writeFile(marker, "");
    process.kill(await appPid(z.appPort), "SIGKILL");
    const region = await until("us-east listing z as failed", async () => {
      const r = await must(stack, "GET", "/v1/regions", { token: stack.tokens.deployer });
      const east = r.regions.find((x: Json) => x.name === REGION);
      const f = east.failed.find((x: Json) => x.machine_id === z.name && x.app === APP);
      return f && /last log: .*refusing to start: no-restart/.test(f.detail) ? east : null;
    });
    expect(region.machines.states.failed).toBe(1);
    const listed = await machine(z.name);
    expect(listed.state).toBe("failed");
    expect(listed.restarts).toBeGreaterThanOrEqual(1);
    expect(listed.detail).toMatch(/restarts? since the release started/);
    // Fixed: the next restart stays up for the settle period (2 s), then z is healthy again,
    // its restarts still counted.
    await rm(marker);
    const back = await until(
      "z healthy again",
      async () => {
        const now = await machine(z.name);
        return now?.state === "healthy" ? now : null;
      },
      60_000,
    );
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    expect(await servedBuild(z.appPort)).toBe(builds.a);
  }, 120_000);

  it("a target region where no machine reports the app: the deployment waits saying so, then fails at its deadline", async () => {
    const wide = (await publishBuild(stack, WIDE, (id) => testArtifact(id, { seed: 31 }))).buildId;
    const d = await deploy(WIDE, wide, { type: "all-at-once", deadline_s: 10 });
    const statuses = new Set<string>();
    await until(
      "us-east healthy on the wide build",
      async () => {
        const ms = await machines(WIDE);
        return ms.length === 3 && ms.every((m) => m.state === "healthy" && m.build_id === wide);
      },
      60_000,
    );
    const mid = await deployment(d.id);
    statuses.add(mid.status);
    if (mid.status === "ROLLING")
      expect(mid.waiting).toBe("waiting: no machine in ap-south reports truth-wide yet");
    const end = await until(
      "the wide deployment ending",
      async () => {
        const now = await deployment(d.id);
        statuses.add(now.status);
        return now.status === "ROLLING" ? null : now;
      },
      60_000,
    );
    expect(end.status).toBe("FAILED");
    expect(end.reason).toBe(
      "all regions not healthy within 10 s: no machine in ap-south reports truth-wide; no previous build to roll back to",
    );
    expect(statuses.has("SUCCEEDED")).toBe(false);
  }, 120_000);
});
