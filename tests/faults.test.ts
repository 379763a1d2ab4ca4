/**
 * Step 10's fault suite: the whole system as real processes on loopback (a libSQL server, the
 * control plane under wrangler dev, a build worker, a region relay and agents), a build and a
 * deploy of the sample app per seed, and meanwhile kill -9 of each component in turn at
 * seeded random moments, each restarted in place. Afterwards the end state is checked:
 * every build ended, nothing the API accepted is missing, every agent runs the goal or the
 * deployment shows its failure, no release on disk is partial or corrupt, no build ran two
 * attempts at once. Prints one `fault_suite` JSON line with the figures.
 *
 * FAULT_SEEDS=1 (default: what `npm test` runs; `npm run test:faults` runs 1-8) picks the seeds, FAULT_COMPONENTS=libsql,agent narrows the faults;
 * KEEP_TEST_DIR=1 keeps every process's log (kept anyway when there is a violation).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../protocol/manifest.ts";
import {
  createSampleRepo,
  killGroup,
  killLeftoverWorkers,
  startWorker,
  type WorkerProcess,
} from "./support/build-worker.ts";
import {
  ControlPlane,
  call,
  Database,
  migrate,
  mintToken,
  prng,
  processesUnder,
  sleep,
  writeDevVars,
} from "./support/faults.ts";
import { AGENT_FLAGS, DenoProcess, RELAY_FLAGS } from "./support/relay-agent.ts";
import { freePort, type Stack } from "./support/stack.ts";

const APP = "sample-app";
const REGION = "us-east";
const AGENTS = 2;
const LEASE_MS = 20_000;
const SEEDS = (process.env.FAULT_SEEDS ?? "1").split(",").map(Number);
const ALL_COMPONENTS = ["libsql", "control-plane", "build-worker", "relay", "agent"] as const;
type Component = (typeof ALL_COMPONENTS)[number];
/** FAULT_COMPONENTS=libsql,relay narrows the faults to some components (default: all). */
const COMPONENTS = (process.env.FAULT_COMPONENTS?.split(",") ?? ALL_COMPONENTS).filter((c) =>
  (ALL_COMPONENTS as readonly string[]).includes(c),
) as Component[];
/** Build worker events after which the worker no longer holds the build. */
const TERMINAL = ["build:completed", "build:failed", "build:abandoned", "build:handed-back"];

let work: string;
let db: Database;
let cp: ControlPlane;
let tokens: { admin: string; deployer: string; builder: string };
let secret: string;
let publicKey: string;
let relayToken: string;
let repo: { repoUrl: string; commits: string[] };
let relayPort: number;
let worker: WorkerProcess | undefined;
/** Every build worker process ever started, with the moment it was killed (if it was). */
const workers: { w: WorkerProcess; killedAt?: number }[] = [];
let relay: DenoProcess | undefined;
const agents: { proc?: DenoProcess; dir: string; appPort: number; machine: string }[] = [];

const summary = {
  seeds: SEEDS,
  runs: 0,
  faults: Object.fromEntries(ALL_COMPONENTS.map((c) => [c, 0])) as Record<Component, number>,
  faults_by_phase: {} as Record<string, number>,
  /** Build worker kills that caught it holding a build (claimed, not yet ended). */
  worker_kills_holding_a_build: 0,
  builds_accepted: 0,
  builds_succeeded: 0,
  builds_failed: 0,
  deployments_accepted: 0,
  /** Deployments that ended in a reported failure (agents then on the rolled-back goal). */
  deployments_reporting_failure: [] as string[],
  agents_checked: 0,
  releases_checked: 0,
  claims_checked: 0,
  violations: [] as string[],
  baseline_ms: {} as Record<string, number>,
  seconds: 0,
};
const accepted = { builds: [] as number[], deployments: [] as number[] };

const workerStack = () => ({ url: cp.url, tokens }) as unknown as Stack;

function startBuildWorker(n: number) {
  worker = startWorker(workerStack(), {
    workspace: join(work, "build-worker"),
    workerId: `faults-worker-${n}`,
  });
  workers.push({ w: worker });
}

async function startRelay() {
  relay = new DenoProcess(
    "relay",
    [
      ...RELAY_FLAGS,
      "region-relay/main.ts",
      "--url",
      cp.url,
      "--region",
      REGION,
      "--relay-id",
      "faults-relay",
      "--hostname",
      "127.0.0.1",
      "--port",
      String(relayPort),
      "--cache-dir",
      join(work, "relay"),
      "--public-key",
      publicKey,
    ],
    { FLEETSHIP_RELAY_TOKEN: relayToken },
    join(work, "relay.log"),
  );
  await relay.waitForEvent("relay:started", () => true, 60_000);
}

async function startAgent(i: number) {
  const a = agents[i]!;
  a.proc = new DenoProcess(
    a.machine,
    [
      ...AGENT_FLAGS,
      "agent-deno/main.ts",
      "--url",
      cp.url,
      "--region",
      REGION,
      "--machine-id",
      a.machine,
      "--relay",
      `http://127.0.0.1:${relayPort}`,
      "--state-dir",
      a.dir,
      "--public-key",
      publicKey,
      "--app-port-base",
      String(a.appPort),
      "--health-timeout-s",
      "10",
    ],
    { FLEETSHIP_ENROLLMENT_SECRET: secret },
    join(work, `${a.machine}.log`),
  );
  // An agent whose control plane is down at start keeps retrying; "started" comes once it is up.
  await a.proc.waitForEvent("agent:started", () => true, 90_000);
}

/** kill -9 of one component, a short seeded pause, and its restart in place. */
async function fault(c: Component, rng: () => number, n: number): Promise<void> {
  const down = 200 + Math.floor(rng() * 1500);
  switch (c) {
    case "libsql":
      await db.kill9();
      await sleep(down);
      await db.start();
      return;
    case "control-plane":
      await cp.kill9();
      await sleep(down);
      await cp.start();
      return;
    case "build-worker": {
      const entry = workers[workers.length - 1]!;
      const ended = new Set(
        entry.w
          .events()
          .filter((e) => TERMINAL.includes(e.event))
          .map((e) => e.build_id),
      );
      const holding = entry.w
        .events()
        .some((e) => e.event === "build:claimed" && !ended.has(e.build_id));
      if (holding) summary.worker_kills_holding_a_build++;
      await entry.w.stop("SIGKILL");
      entry.killedAt = Date.now();
      // The machine died: its build commands die with it (their process groups).
      for (const e of entry.w.events())
        if (e.event === "build:command-started" && typeof e.pid === "number") killGroup(e.pid);
      await sleep(down);
      startBuildWorker(n);
      return;
    }
    case "relay":
      await relay?.stop("SIGKILL");
      await sleep(down);
      await startRelay();
      return;
    case "agent": {
      const i = Math.floor(rng() * agents.length);
      await agents[i]!.proc?.stop("SIGKILL");
      await sleep(down);
      await startAgent(i);
      return;
    }
  }
}

/** Retries a mutating call until the API answers (the control plane or its database may be down). */
async function accept(
  path: string,
  body: unknown,
  ms = 90_000,
): Promise<{ status: number; body: any }> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await call(cp.url, "POST", path, tokens.deployer, body);
    if (r.status >= 200 && r.status < 500 && r.status !== 409 && r.status !== 429) return r;
    if (Date.now() > deadline) return r;
    await sleep(500);
  }
}

async function get(path: string): Promise<any | undefined> {
  const r = await call(cp.url, "GET", path, tokens.admin);
  return r.status === 200 ? r.body : undefined;
}

async function waitUntil<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(500);
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-faults-"));
  const dataDir = join(work, "stack");
  await mkdir(dataDir);
  const vars = await writeDevVars(dataDir, LEASE_MS);
  secret = vars.ENROLLMENT_SECRET;
  db = new Database(join(dataDir, "control.db"), await freePort());
  relayPort = await freePort();
  [, repo] = await Promise.all([db.start(), createSampleRepo(join(work, "sample-app"))]);
  await migrate(db.url);
  tokens = {
    admin: await mintToken(db.url, vars.TOKEN_PEPPER, "admin"),
    deployer: await mintToken(db.url, vars.TOKEN_PEPPER, "deployer"),
    builder: await mintToken(db.url, vars.TOKEN_PEPPER, "builder"),
  };
  cp = new ControlPlane(dataDir, await freePort(), db.url, join(work, "control-plane.log"));
  await cp.start();
  publicKey = (await (await fetch(`${cp.url}/v1/signing-key`)).json()).public_key;
  const reg = await call(cp.url, "POST", "/v1/applications", tokens.admin, {
    name: APP,
    repo_url: repo.repoUrl,
    build_command: "sh build.sh",
    artifact_path: "out/sample-app",
    run_command: "./sample-app --port $PORT",
    health_check: { type: "http", path: "/healthz", port: 8080 },
    regions: [REGION],
  });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.body)}`);
  const rt = await call(cp.url, "POST", "/v1/tokens", tokens.admin, {
    name: "faults relay",
    role: "relay",
    region: REGION,
  });
  relayToken = rt.body.token;
  startBuildWorker(0);
  await startRelay();
  for (let i = 0; i < AGENTS; i++) {
    agents.push({
      dir: join(work, `agent-${i}`),
      appPort: await freePort(),
      machine: `faults-m${i}`,
    });
    await startAgent(i);
  }
}, 180_000);

afterAll(async () => {
  // Every process this file started, whatever happened. Agents get SIGTERM so they stop
  // their apps (SIGKILL after 10 s).
  await Promise.allSettled(agents.map((a) => a.proc?.stop("SIGTERM", 10_000)));
  await relay?.stop("SIGKILL").catch(() => {});
  for (const { w } of workers) {
    await w.stop("SIGKILL").catch(() => {});
    for (const e of w.events())
      if (e.event === "build:command-started" && typeof e.pid === "number") killGroup(e.pid);
  }
  killLeftoverWorkers();
  await cp?.stop().catch(() => {});
  await db?.stop().catch(() => {});
  // Anything still running from under the work directory (an app or build command orphaned
  // by a kill -9) is killed by pid and reported.
  if (work) {
    const left = await processesUnder(work);
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    if (left.length)
      console.log(
        `fault-suite: killed ${left.length} leftover process(es): ${JSON.stringify(left)}`,
      );
  }
  if (work && !process.env.KEEP_TEST_DIR && summary.violations.length === 0)
    await rm(work, { recursive: true, force: true });
  else if (work) console.log(`kept ${work}`);
}, 60_000);

const ts = (v: unknown) => (typeof v === "number" ? v : Date.parse(String(v)));

describe("fault suite: kill -9 of every component during a build and a deploy", () => {
  it(
    "ends every build, loses nothing accepted, leaves no partial release, never runs two attempts at once",
    async () => {
      const started = Date.now();
      const violation = (s: string) => {
        summary.violations.push(s);
        console.log(`fault-suite violation: ${s}`);
      };
      let currentPhase = "build";
      let currentBuild: number | undefined;
      const currentLinks = async () => {
        const links = await Promise.all(
          agents.map((a) => readlink(join(a.dir, "apps", APP, "current")).catch(() => "")),
        );
        return links;
      };
      /** One build then one deploy; `during` (if any) is started at the given moment of each. */
      const run = async (
        label: string,
        commit: string,
        during?: { build: () => Promise<void>; deploy: () => Promise<void> },
      ) => {
        const pending: Promise<void>[] = [];
        currentPhase = "build";
        currentBuild = undefined;
        const t0 = Date.now();
        if (during) pending.push(during.build());
        const q = await accept("/v1/builds", { app: APP, commit_sha: commit, force: true });
        let buildId: number | undefined;
        if (q.status === 201 || q.status === 200) {
          buildId = q.body.id as number;
          currentBuild = buildId;
          accepted.builds.push(buildId);
        } else violation(`${label}: queueing the build never answered (${q.status})`);
        let deployable = false;
        let b: any;
        if (buildId !== undefined) {
          b = await waitUntil(async () => {
            const b = await get(`/v1/builds/${buildId}`);
            return b && (b.status === "FAILED" || b.deployable) ? b : undefined;
          }, 150_000);
          deployable = b?.deployable === true;
        }
        const buildMs = Date.now() - t0;
        currentPhase = "build-ended";
        // The build's fault is over (its component restarted) before the deploy starts, so
        // the deploy's fault lands in the deploy and never two faults of one component overlap.
        await Promise.all(pending);
        currentPhase = "deploy";
        const t1 = Date.now();
        if (during) pending.push(during.deploy());
        let deploymentId: number | undefined;
        if (deployable) {
          const d = await accept("/v1/deployments", { app: APP, build_id: buildId });
          if (d.status === 201 || d.status === 200) {
            deploymentId = d.body.id as number;
            accepted.deployments.push(deploymentId);
          } else
            violation(
              `${label}: deployment of build ${buildId} refused: ${d.status} ${JSON.stringify(d.body)}`,
            );
        } else
          console.log(
            `fault-suite ${label}: build ${buildId} not deployable: ${JSON.stringify(b)}`,
          );
        if (deploymentId !== undefined)
          await waitUntil(
            async () =>
              (await currentLinks()).every((l) => l === `releases/${buildId}`) ? true : undefined,
            90_000,
          );
        const deployMs = Date.now() - t1;
        currentPhase = "after";
        await Promise.all(pending);
        summary.runs++;
        // Every agent runs the goal's build or the deployment shows its failure.
        if (deploymentId !== undefined) {
          const converged = await waitUntil(
            async () =>
              (await currentLinks()).every((l) => l === `releases/${buildId}`) ? true : undefined,
            60_000,
          );
          summary.agents_checked += agents.length;
          if (!converged) {
            // Not on the deployed build: allowed only when the deployment reports the failure
            // (it ended ROLLED_BACK/FAILED/ABORTED with a reason) and every agent then runs the
            // goal as it now stands (the build rolled back to).
            const d = await get(`/v1/deployments/${deploymentId}`);
            const region = d?.regions?.find((r: any) => r.region === REGION);
            const goal = await get("/v1/goal");
            const goalBuild = goal?.apps?.[APP]?.build_id;
            const onGoalNow = await waitUntil(
              async () =>
                (await currentLinks()).every((l) => l === `releases/${goalBuild}`)
                  ? true
                  : undefined,
              30_000,
            );
            const links = await currentLinks();
            if (
              ["ROLLED_BACK", "FAILED", "ABORTED"].includes(d?.status) &&
              d?.reason &&
              onGoalNow
            ) {
              summary.deployments_reporting_failure.push(
                `${deploymentId}: ${d.status}: ${d.reason}`,
              );
              console.log(
                `fault-suite ${label}: deployment ${deploymentId} ${d.status}: ${d.reason}`,
              );
            } else
              violation(
                `${label}: agents on ${links.join(", ")}, not on build ${buildId}; deployment ${deploymentId} ${d?.status} (${d?.reason}) ${JSON.stringify(region)}; goal ${JSON.stringify(goal)}`,
              );
          }
        }
        console.log(
          `fault-suite ${label}: build ${buildId} ${b?.status} attempt ${b?.attempt} in ${buildMs} ms, deploy in ${deployMs} ms`,
        );
        return { buildMs, deployMs };
      };

      // A run without faults measures how long a build and a deploy take: the faults land at
      // random moments inside those spans.
      const base = await run("baseline", repo.commits[0]!);
      summary.baseline_ms = base;
      // How long the worker holds a build (claim to completion): a worker kill lands inside it.
      const held = workers[0]!.w.events().filter((e) => e.build_id === accepted.builds[0]);
      const holdMs = Math.max(
        100,
        ts(held.find((e) => e.event === "build:completed")?.ts) -
          ts(held.find((e) => e.event === "build:claimed")?.ts) || 500,
      );
      summary.baseline_ms.holdMs = holdMs;
      let n = 0;
      for (const seed of SEEDS) {
        const rng = prng(seed);
        // Each component in turn, in a seeded order; one run per component, killed once at a
        // random moment of the build and once at a random moment of the deploy.
        const order = [...COMPONENTS].sort(() => rng() - 0.5);
        for (const c of order) {
          const inject = (planned: "build" | "deploy", spanMs: number) => async () => {
            if (c === "build-worker" && planned === "build") {
              // A worker kill matters while it holds the build: the moment counts from its claim.
              const deadline = Date.now() + 15_000;
              while (
                Date.now() < deadline &&
                !workers
                  .at(-1)
                  ?.w.events()
                  .some((e) => e.event === "build:claimed" && e.build_id === currentBuild)
              )
                await sleep(20);
            }
            await sleep(Math.floor(rng() * spanMs));
            // Where it actually landed (a fault planned for the deploy may land after it).
            // ("build->build-ended": the build had ended, the deploy not yet started.)
            const phase = currentPhase === planned ? planned : `${planned}->${currentPhase}`;
            summary.faults[c]++;
            summary.faults_by_phase[`${c}@${phase}`] =
              (summary.faults_by_phase[`${c}@${phase}`] ?? 0) + 1;
            console.log(`fault-suite seed ${seed}: kill -9 ${c} during the ${phase}`);
            await fault(c, rng, workers.length);
          };
          n++;
          await run(`seed ${seed} ${c}`, repo.commits[n % repo.commits.length]!, {
            build: inject("build", c === "build-worker" ? holdMs : Math.max(1_000, base.buildMs)),
            deploy: inject("deploy", Math.max(300, base.deployMs)),
          });
        }
      }

      // Every build ended (none stuck QUEUED or RUNNING), and every accepted one exists.
      for (const id of accepted.builds) {
        const b = await waitUntil(async () => {
          const b = await get(`/v1/builds/${id}`);
          return b && (b.status === "SUCCEEDED" || b.status === "FAILED") ? b : undefined;
        }, 120_000);
        const now = await get(`/v1/builds/${id}`);
        if (!now) violation(`accepted build ${id} is missing`);
        else if (!b) violation(`build ${id} stuck ${now.status} (attempt ${now.attempt})`);
        else if (b.status === "SUCCEEDED") summary.builds_succeeded++;
        else summary.builds_failed++;
      }
      summary.builds_accepted = accepted.builds.length;
      for (const id of accepted.deployments)
        if (!(await get(`/v1/deployments/${id}`)))
          violation(`accepted deployment ${id} is missing`);
      summary.deployments_accepted = accepted.deployments.length;

      // No release on disk partial or corrupt: each release's file hashes to its manifest.
      for (const a of agents) {
        const dir = join(a.dir, "apps", APP, "releases");
        const entries = await readdir(dir).catch(() => [] as string[]);
        for (const name of entries) {
          if (name.startsWith(".tmp-")) continue; // removed at the agent's next start
          summary.releases_checked++;
          try {
            const info = JSON.parse(await readFile(join(dir, name, "release.json"), "utf8"));
            const body = JSON.parse(await readFile(join(dir, name, "manifest.json"), "utf8"));
            const manifest = parseManifest(body.manifest);
            const hash = await sha256File(join(dir, name, APP));
            if (hash !== manifest.sha256 || String(info.build_id) !== name)
              violation(
                `${a.machine}: release ${name} hashes to ${hash}, manifest says ${manifest.sha256}`,
              );
          } catch (err) {
            violation(`${a.machine}: release ${name} unreadable: ${err}`);
          }
        }
      }

      // No build ran two attempts at once: (1) the audit log's claims per build match its
      // attempt count; (2) the spans during which worker processes held a build never overlap.
      const client = createClient({ url: db.url });
      try {
        for (const id of accepted.builds) {
          const claims = await client.execute({
            sql: "SELECT ts, details FROM audit_log WHERE action = 'build.claim' AND target = ? ORDER BY id",
            args: [`build:${id}`],
          });
          const row = await client.execute({
            sql: "SELECT attempt FROM builds WHERE id = ?",
            args: [id],
          });
          summary.claims_checked += claims.rows.length;
          if (claims.rows.length !== Number(row.rows[0]?.attempt))
            violation(
              `build ${id}: ${claims.rows.length} claims in the audit log, attempt ${row.rows[0]?.attempt}`,
            );
        }
      } finally {
        client.close();
      }
      const spans: { build: number; worker: string; from: number; to: number }[] = [];
      for (const { w, killedAt } of workers) {
        const byBuild = new Map<number, { from: number; to: number; ended: boolean }>();
        for (const e of w.events()) {
          if (typeof e.build_id !== "number") continue;
          const t = ts(e.ts);
          const s = byBuild.get(e.build_id);
          const ended = TERMINAL.includes(e.event);
          if (e.event === "build:claimed" || !s)
            byBuild.set(e.build_id, { from: s?.from ?? t, to: t, ended });
          else {
            s.to = t;
            s.ended ||= ended;
          }
        }
        for (const [build, s] of byBuild)
          spans.push({
            build,
            worker: w.workerId,
            from: s.from,
            to: s.ended ? s.to : (killedAt ?? Date.now()),
          });
      }
      for (const a of spans)
        for (const b of spans)
          if (
            a !== b &&
            a.build === b.build &&
            a.worker < b.worker &&
            a.from < b.to &&
            b.from < a.to
          )
            violation(`build ${a.build}: ${a.worker} and ${b.worker} held it at once`);

      summary.seconds = Math.round((Date.now() - started) / 1000);
      console.log(JSON.stringify({ fault_suite: summary }));
      expect(summary.violations).toEqual([]);
      expect(summary.runs).toBe(1 + SEEDS.length * COMPONENTS.length);
    },
    // About 50 s a seed on 2 cores (1 seed in npm test: under a minute); the deadlines above bound each wait.
    120_000 + SEEDS.length * 120_000,
  );
});
