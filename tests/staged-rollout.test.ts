/**
 * Step 9 with real processes: the local stack, a relay and two agents in each of two regions,
 * builds published through the API. A staged deploy of a build that fails its health check
 * stops at the canary and reverts by itself; a healthy staged deploy goes region by region and
 * carries on after the control plane is restarted mid-rollout.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

const APP = "staged-demo";
const REGIONS = ["us-east", "eu-west"];
let stack: Stack;
let work: string;
const procs: DenoProcess[] = [];
const agents: { region: string; appPort: number }[] = [];
const builds = { a: 0, b: 0, bad: 0 };

async function deploy(buildId: number, strategy?: unknown): Promise<Json> {
  return must(stack, "POST", "/v1/deployments", {
    token: stack.tokens.deployer,
    body: { app: APP, build_id: buildId, ...(strategy ? { strategy } : {}) },
  });
}

const deployment = (id: number) =>
  must(stack, "GET", `/v1/deployments/${id}`, { token: stack.tokens.deployer });
const served = () => Promise.all(agents.map((a) => servedBuild(a.appPort)));

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-staged-"));
  stack = await startStack();
  const secret = await enrollmentSecret(stack);
  await must(stack, "POST", "/v1/applications", {
    token: stack.tokens.admin,
    body: {
      name: APP,
      repo_url: "file:///srv/git/staged-demo.git",
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${APP}`,
      health_check: { type: "http", path: "/healthz", port: 8080 },
      regions: REGIONS,
    },
  });
  builds.a = (
    await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 64 * 1024, seed: 11 }))
  ).buildId;
  builds.b = (
    await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 64 * 1024, seed: 12 }))
  ).buildId;
  builds.bad = (
    await publishBuild(stack, APP, (id) =>
      testArtifact(id, { healthy: false, padBytes: 64 * 1024, seed: 13 }),
    )
  ).buildId;
  for (const region of REGIONS) {
    const relay = await startRelay(stack, { region, name: `relay-${region}`, work });
    procs.push(relay.proc);
    for (let i = 0; i < 2; i++) {
      const agent = await startAgent(stack, {
        region,
        name: `${region}-m${i}`,
        work,
        relay: relay.url,
        secret,
        extra: ["--health-timeout-s", "4"],
      });
      procs.push(agent.proc);
      agents.push({ region, appPort: agent.appPort });
    }
  }
  const first = await deploy(builds.a);
  await until(
    "every agent serving build a",
    async () => (await served()).every((b) => b === builds.a),
    60_000,
  );
  await until(
    "first deployment done",
    async () => (await deployment(first.id)).status === "SUCCEEDED",
    60_000,
  );
}, 240_000);

afterAll(async () => {
  for (const p of procs.reverse()) await p.stop();
  await stack?.stop();
  if (stack) await rm(stack.dataDir, { recursive: true, force: true });
  if (!process.env.KEEP_TEST_DIR) await rm(work, { recursive: true, force: true });
});

describe("staged rollouts with real agents", () => {
  it("stops a build that fails health at the canary and reverts by itself; no machine outside the canary runs it", async () => {
    const d = await deploy(builds.bad, { type: "staged", canary: { machines: 1 }, bake_s: 1 });
    const seen = new Set<string>();
    const ended = await until(
      "the bad deployment ending",
      async () => {
        for (const [i, b] of (await served()).entries()) seen.add(`${agents[i]!.region}:${b}`);
        const now = await deployment(d.id);
        return now.status === "ROLLING" ? null : now;
      },
      90_000,
    );
    expect(ended.status).toBe("ROLLED_BACK");
    expect(ended.reason).toMatch(
      /^canary in us-east failed health: 1\/1 machines; rolled back automatically$/,
    );
    expect(seen.has(`eu-west:${builds.bad}`)).toBe(false);
    await until(
      "every agent back on build a",
      async () => (await served()).every((b) => b === builds.a),
      60_000,
    );
  }, 120_000);

  it("goes region by region with bake times, and carries on after the control plane restarts mid-rollout", async () => {
    const d = await deploy(builds.b, { type: "staged", bake_s: 3 });
    await until(
      "us-east on build b",
      async () => (await served()).slice(0, 2).every((b) => b === builds.b),
      60_000,
    );
    // us-east is baking: eu-west must still run a.
    expect((await served()).slice(2)).toEqual([builds.a, builds.a]);
    const { port, libsqlPort, dataDir } = stack;
    await stack.stop({ keepData: true });
    stack = await startStack({ dataDir, port, libsqlPort });
    const ended = await until(
      "the deployment ending after the restart",
      async () => {
        const now = await deployment(d.id);
        return now.status === "ROLLING" ? null : now;
      },
      90_000,
    );
    expect(ended.status).toBe("SUCCEEDED");
    expect(ended.waves.map((w: Json) => [w.name, w.status])).toEqual([
      ["us-east", "passed"],
      ["eu-west", "passed"],
    ]);
    await until(
      "every agent on build b",
      async () => (await served()).every((b) => b === builds.b),
      60_000,
    );
  }, 200_000);
});
