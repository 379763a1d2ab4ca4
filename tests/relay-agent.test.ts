/**
 * Step 6 end to end, with real processes: the local stack (libSQL server, control plane under
 * wrangler dev), two region relays and three agents as Deno processes, builds published
 * through the API. One story, in order: deploy, redeploy (one agent killed mid-download),
 * roll back, a build that fails its health check, a relay killed, everything upstream stopped.
 * KEEP_TEST_DIR=1 keeps the work directory (every process's log is there as <name>.log).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT_FLAGS,
  api,
  DenoProcess,
  enrollmentSecret,
  type Json,
  must,
  publishBuild,
  RELAY_FLAGS,
  relayMetric,
  servedBuild,
  testArtifact,
  until,
} from "./support/relay-agent.ts";
import { freePort, type Stack, startStack } from "./support/stack.ts";

const APP = "relay-demo";
const REGION = "us-east";

let stack: Stack;
let work: string;
let secret: string;
let relayToken: string;
const relays: { proc: DenoProcess; url: string; port: number; dir: string }[] = [];
const agents: { name: string; proc: DenoProcess; appPort: number; dir: string }[] = [];
const builds: Record<"a" | "b" | "bad", number> = { a: 0, b: 0, bad: 0 };
let bChunks: string[] = [];
let aChunks: string[] = [];

async function startRelay(i: number) {
  const port = relays[i]?.port ?? (await freePort());
  const dir = relays[i]?.dir ?? join(work, `relay-${i}`);
  const proc = new DenoProcess(
    `relay-${i}`,
    [
      ...RELAY_FLAGS,
      "region-relay/main.ts",
      "--url",
      stack.url,
      "--region",
      REGION,
      "--relay-id",
      `relay-${i}`,
      "--hostname",
      "127.0.0.1",
      "--port",
      String(port),
      "--cache-dir",
      dir,
      "--public-key",
      stack.publicKey,
    ],
    { FLEETSHIP_RELAY_TOKEN: relayToken },
    join(work, `relay-${i}.log`),
  );
  await proc.waitForEvent("relay:started");
  relays[i] = { proc, url: `http://127.0.0.1:${port}`, port, dir };
}

async function startAgent(i: number, relayOrder: number[]) {
  const prior = agents[i];
  const appPort = prior?.appPort ?? (await freePort());
  const dir = prior?.dir ?? join(work, `agent-${i}`);
  const proc = new DenoProcess(
    `agent-${i}`,
    [
      ...AGENT_FLAGS,
      "agent-deno/main.ts",
      "--url",
      stack.url,
      "--region",
      REGION,
      "--machine-id",
      `machine-${i}`,
      ...relayOrder.flatMap((r) => ["--relay", relays[r]!.url]),
      "--state-dir",
      dir,
      "--public-key",
      stack.publicKey,
      "--app-port-base",
      String(appPort),
      "--health-timeout-s",
      "4",
      "--download-concurrency",
      "2",
    ],
    { FLEETSHIP_ENROLLMENT_SECRET: secret },
    join(work, `agent-${i}.log`),
  );
  agents[i] = { name: `agent-${i}`, proc, appPort, dir };
  await proc.waitForEvent("agent:started");
}

const served = () => Promise.all(agents.map((a) => servedBuild(a.appPort)));

async function allServe(buildId: number, ms = 30_000) {
  await until(
    `every agent serving build ${buildId}`,
    async () => (await served()).every((b) => b === buildId),
    ms,
  );
}

async function deploy(buildId: number): Promise<Json> {
  // A deployment still ending (the control plane reverting a failed one) may refuse briefly.
  return await until(
    `deployment of build ${buildId}`,
    async () => {
      const r = await api(stack, "POST", "/v1/deployments", {
        token: stack.tokens.deployer,
        body: { app: APP, build_id: buildId },
      });
      if (r.status !== 201)
        throw new Error(`POST /v1/deployments: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    15_000,
  );
}

async function regionCounts(deploymentId: number): Promise<Json> {
  const d = await must(stack, "GET", `/v1/deployments/${deploymentId}`, {
    token: stack.tokens.deployer,
  });
  return { ...d, region: d.regions.find((r: Json) => r.region === REGION) };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-relay-agent-"));
  stack = await startStack();
  secret = await enrollmentSecret(stack);
  const { admin } = stack.tokens;
  await must(stack, "POST", "/v1/applications", {
    token: admin,
    body: {
      name: APP,
      repo_url: "file:///srv/git/relay-demo.git",
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${APP}`,
      health_check: { type: "http", path: "/healthz", port: 8080 },
      regions: [REGION],
    },
  });
  relayToken = (
    await must(stack, "POST", "/v1/tokens", {
      token: admin,
      body: { name: "test relay", role: "relay", region: REGION },
    })
  ).token;
  // A: small. B: ~6 MiB, mostly new chunks (many chunks, so an agent can be killed mid-way).
  // BAD: answers 503 on /healthz.
  const a = await publishBuild(stack, APP, (id) =>
    testArtifact(id, { padBytes: 256 * 1024, seed: 1 }),
  );
  const b = await publishBuild(stack, APP, (id) =>
    testArtifact(id, { padBytes: 6 * 1024 * 1024, seed: 2 }),
  );
  const bad = await publishBuild(stack, APP, (id) =>
    testArtifact(id, { healthy: false, padBytes: 64 * 1024, seed: 3 }),
  );
  builds.a = a.buildId;
  builds.b = b.buildId;
  builds.bad = bad.buildId;
  aChunks = a.chunks;
  bChunks = b.chunks;
  await startRelay(0);
  await startRelay(1);
  for (let i = 0; i < 3; i++) await startAgent(i, [0, 1]);
}, 180_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a?.proc.stop()));
  await Promise.all(relays.map((r) => r?.proc.stop()));
  await stack?.stop();
  if (work && !process.env.KEEP_TEST_DIR) await rm(work, { recursive: true, force: true });
  else if (work) console.log(`kept ${work}`);
}, 60_000);

/** Measured figures, printed as one JSON line at the end. */
const figures: Record<string, number | string> = {};

describe("region relays and agents (real processes)", () => {
  afterAll(() => console.log(JSON.stringify({ relay_agent_figures: figures })));

  it("a deployment runs the new build on every agent, and the deployment sees them healthy", async () => {
    const started = Date.now();
    const d = await deploy(builds.a);
    await allServe(builds.a);
    figures.deploy_a_ms = Date.now() - started;
    const progress = await until("deployment counts all healthy", async () => {
      const p = await regionCounts(d.id);
      return p.region?.counts.healthy === 3 ? p : null;
    });
    expect(progress.region.counts).toMatchObject({ healthy: 3, failed: 0, unreachable: 0 });
    for (const a of agents) expect(a.proc.events("agent:enrolled")).toHaveLength(1);
  }, 60_000);

  it("a redeploy switches every agent; one killed mid-download resumes without refetching; the relay reads each chunk upstream once", async () => {
    const relay = relays[0]!;
    const readsBefore = await relayMetric(relay.url, "relay_upstream_reads_total");
    const servedBefore = await relayMetric(relay.url, "relay_chunks_served_total");
    const victim = agents[2]!;
    const ofB = (p: DenoProcess, event: string) =>
      p.events(event).filter((e) => e.build_id === builds.b);
    let fetched = 0;
    victim.proc.killWhen(
      (line) =>
        line.includes('"event":"chunk:fetched"') &&
        line.includes(`"build_id":${builds.b},`) &&
        ++fetched === 5,
    );
    const started = Date.now();
    await deploy(builds.b);
    await victim.proc.exited;
    const firstRun = ofB(victim.proc, "chunk:fetched");
    expect(ofB(victim.proc, "download:finished")).toHaveLength(0); // it really died mid-download
    await startAgent(2, [0, 1]);
    await allServe(builds.b, 60_000);
    figures.deploy_b_ms = Date.now() - started;

    const restarted = agents[2]!.proc;
    const [resumed] = ofB(restarted, "download:started");
    const secondRun = ofB(restarted, "chunk:fetched");
    const refetched = secondRun.filter((e) => firstRun.some((f) => f.digest === e.digest));
    // Only chunks in flight at the kill (download concurrency 2) may be fetched again.
    expect(resumed.chunks_done).toBeGreaterThanOrEqual(firstRun.length - 2);
    expect(refetched.length).toBeLessThanOrEqual(2);
    const reused = ofB(victim.proc, "chunk:reused").length + ofB(restarted, "chunk:reused").length;
    // Every chunk came exactly once, give or take those refetched.
    expect(firstRun.length + secondRun.length - refetched.length + reused).toBe(
      resumed.chunks_total,
    );
    Object.assign(figures, {
      b_chunks: resumed.chunks_total,
      victim_first_run_chunks: firstRun.length,
      victim_resumed_at_chunks: resumed.chunks_done,
      victim_refetched_chunks: refetched.length,
    });

    const distinctNew = new Set(bChunks.filter((c) => !aChunks.includes(c))).size;
    const reads = (await relayMetric(relay.url, "relay_upstream_reads_total")) - readsBefore;
    const served = (await relayMetric(relay.url, "relay_chunks_served_total")) - servedBefore;
    // Every agent fetched B's new chunks through relay 0; it read each from upstream once.
    expect(reads).toBe(distinctNew);
    expect(served).toBeGreaterThanOrEqual(2 * distinctNew + secondRun.length);
    Object.assign(figures, {
      b_new_chunks: distinctNew,
      relay_upstream_reads: reads,
      relay_chunks_served: served,
    });
  }, 120_000);

  it("a rollback returns every agent to the previous build with nothing downloaded", async () => {
    const servedBefore = await Promise.all(
      relays.map((r) => relayMetric(r.url, "relay_chunks_served_total")),
    );
    const list = await must(stack, "GET", `/v1/deployments?app=${APP}`, {
      token: stack.tokens.deployer,
    });
    const current = list.deployments[0];
    expect(current.build_id).toBe(builds.b);
    const downloadsBefore = agents.map((a) => a.proc.events("download:started").length);
    const started = Date.now();
    await must(stack, "POST", `/v1/deployments/${current.id}/rollback`, {
      token: stack.tokens.deployer,
    });
    await allServe(builds.a);
    figures.rollback_ms = Date.now() - started;
    const servedAfter = await Promise.all(
      relays.map((r) => relayMetric(r.url, "relay_chunks_served_total")),
    );
    expect(servedAfter).toEqual(servedBefore);
    expect(agents.map((a) => a.proc.events("download:started").length)).toEqual(downloadsBefore);
  }, 60_000);

  it("a build that fails its health check is rolled back locally and reported failed with the reason", async () => {
    const started = Date.now();
    const d = await deploy(builds.bad);
    for (const a of agents) {
      const failed = await a.proc.waitForEvent("deploy:failed", (e) => e.build_id === builds.bad);
      expect(failed.reason).toMatch(/GET \/healthz answered 503/);
      await a.proc.waitForEvent(
        "deploy:rolled-back",
        (e) => e.from_build_id === builds.bad && e.to_build_id === builds.a,
      );
    }
    await allServe(builds.a, 15_000); // the previous release, restarted
    figures.failed_health_rollback_ms = Date.now() - started;
    // Each machine's failure went up through the relay with its reason...
    for (const i of [0, 1, 2]) {
      await relays[0]!.proc.waitForEvent(
        "agent:status",
        (e) =>
          e.machine_id === `machine-${i}` &&
          e.build_id === builds.bad &&
          e.state === "failed" &&
          /health check failed: .*503/.test(e.detail),
        10_000,
      );
    }
    // ...and the deployment shows it: all three counted failed, or (the control plane's own
    // health gate having acted on those counts) ended with the reason.
    const seen = await until("the deployment shows the failures", async () => {
      const p = await regionCounts(d.id);
      return p.region?.counts.failed === 3 || ["ROLLED_BACK", "FAILED"].includes(p.status)
        ? p
        : null;
    });
    if (seen.region?.counts.failed !== 3)
      expect(seen.reason).toMatch(/failed health: 3\/3 machines/);
    figures.failed_deployment = `${seen.status}: ${seen.reason ?? JSON.stringify(seen.region?.counts)}`;
  }, 60_000);

  it("a relay killed: its agents move to the other relay and converge", async () => {
    await relays[0]!.proc.stop("SIGKILL");
    const started = Date.now();
    await deploy(builds.b);
    await allServe(builds.b, 30_000);
    figures.failover_deploy_ms = Date.now() - started;
    for (const a of agents)
      expect(a.proc.events("relay:connected").at(-1)?.relay).toBe(relays[1]!.url);
  }, 60_000);

  it("agents keep serving when the relays and the control plane are gone", async () => {
    expect(await relays[1]!.proc.stop("SIGTERM")).toBe(0); // a relay stops cleanly too
    await stack.stop();
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await served()).toEqual([builds.b, builds.b, builds.b]);
    // SIGTERM stops the app and exits cleanly; restarted, the agent runs its applied release
    // again with nothing upstream.
    expect(await agents[0]!.proc.stop("SIGTERM")).toBe(0);
    expect(agents[0]!.proc.events("app:stopped").length).toBeGreaterThan(0);
    expect(await servedBuild(agents[0]!.appPort)).toBeNull();
    await startAgent(0, [0, 1]);
    await until(
      "agent 0 serving again",
      async () => (await servedBuild(agents[0]!.appPort)) === builds.b,
      20_000,
    );
  }, 60_000);
});
