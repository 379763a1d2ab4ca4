// The build worker against the real local stack (libSQL server + control plane under wrangler
// dev), as real Deno processes building the real sample app from a git repository.
//
// The stack runs with LEASE_MS=20000 (written to its .dev.vars before it starts; dev/start.ts
// keeps what it finds there), so heartbeats come every 5 s and a dead worker's build is back in
// the queue within 20 s + the reaper's 15 s tick instead of 75 s.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../protocol/manifest.ts";
import { verifyManifest } from "../protocol/manifest-signing.ts";
import { Verifier } from "../protocol/signing.ts";
import {
  Api,
  createSampleRepo,
  killGroup,
  killLeftoverWorkers,
  liveProcessesInGroup,
  primaryBlobsDir,
  sleep,
  startWorker,
  type WorkerEvent,
  type WorkerProcess,
} from "./support/build-worker.ts";
import { freePort, type Stack, startStack } from "./support/stack.ts";

const MiB = 1024 * 1024;
let stack: Stack;
let api: Api;
let root: string;
let repo: { repoUrl: string; commits: string[] };
let v1: string;
let v2: string;
/** Build process groups to kill in afterAll, whatever the tests did. */
const groups: number[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "fleetship-build-worker-"));
  const dataDir = join(root, "stack");
  await mkdir(dataDir);
  await writeFile(join(dataDir, ".dev.vars"), "LEASE_MS=20000\n");
  [stack, repo] = await Promise.all([
    startStack({ dataDir }),
    createSampleRepo(join(root, "sample-app")),
  ]);
  [v1, v2] = repo.commits as [string, string];
  api = new Api(stack);
  const sample = { repo_url: repo.repoUrl, artifact_path: "out/sample-app" };
  for (const [name, build_command, build_timeout_s] of [
    ["sample-app", "sh build.sh"],
    ["fails", 'echo "compiling..."; echo "error: widget.c:3: missing semicolon" >&2; exit 3'],
    ["hangs", "echo hanging; sleep 600 & sleep 600", 10],
    ["runs-long", "sleep 600"],
    ["slow-app", "echo warming up; sleep 3; sh build.sh"],
    // ~1% of the padding differs between v1 and v2 (dev/sample-app/src/pad.c).
    ["big-app", "SAMPLE_APP_PAD_MIB=96 sh build.sh"],
    ["huge-app", "SAMPLE_APP_PAD_MIB=1024 SAMPLE_APP_PAD_SEED=2 sh build.sh"],
  ] as const) {
    await api.registerApp({
      name,
      build_command,
      ...(build_timeout_s ? { build_timeout_s } : {}),
      ...sample,
    });
  }
}, 180_000);

afterAll(async () => {
  killLeftoverWorkers();
  for (const pgid of groups) killGroup(pgid);
  await stack?.stop();
  if (root) await rm(root, { recursive: true, force: true });
}, 60_000);

let workers = 0;
function worker(args: string[] = []): WorkerProcess {
  const n = ++workers;
  return startWorker(stack, {
    workspace: join(root, `workspace-${n}`),
    workerId: `test-worker-${n}`,
    args,
  });
}

/** SIGTERM, and the worker must exit 0 (its output is the failure message otherwise). */
async function stopCleanly(w: WorkerProcess): Promise<void> {
  const exit = await w.stop("SIGTERM");
  expect(exit, `worker ${w.workerId} output:\n${w.output().slice(-8000)}`).toEqual({
    code: 0,
    signal: null,
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return hash.digest("hex");
}

function startedPgid(w: WorkerProcess, buildId: number): number {
  const e = w.events().find((x) => x.event === "build:command-started" && x.build_id === buildId);
  if (!e) throw new Error(`worker ${w.workerId} never started build ${buildId}`);
  return e.pid as number;
}

interface Uploaded {
  chunks_total: number;
  chunks_uploaded: number;
  bytes_total: number;
  bytes_uploaded: number;
  ms: number;
}

/** The worker's summary of what it uploaded for a build. */
async function uploaded(w: WorkerProcess, buildId: number): Promise<Uploaded> {
  const e = await w.waitFor((x) => x.event === "build:uploaded" && x.build_id === buildId, 1_000);
  return e as unknown as Uploaded;
}

async function signedManifest(id: number): Promise<Manifest> {
  const r = await api.call("GET", `/v1/builds/${id}/manifest`);
  expect(r.status).toBe(200);
  const verdict = await verifyManifest(await Verifier.fromPublicKeys(stack.publicKey), r.body);
  if (!verdict.ok) throw new Error(`manifest of build ${id} does not verify: ${verdict.message}`);
  return verdict.manifest;
}

describe("the build worker builds the sample app", () => {
  let w: WorkerProcess;
  beforeAll(() => {
    w = worker();
  });
  afterAll(async () => {
    await stopCleanly(w);
  }, 30_000);

  it("SUCCEEDS with a signed manifest whose stored chunks rebuild a binary that runs", async () => {
    const id = await api.queueBuild("sample-app", v1);
    const build = await api.waitForBuild(id, 60_000);
    expect(build).toMatchObject({ status: "SUCCEEDED", attempt: 1, worker_id: w.workerId });
    const manifest = await signedManifest(id);
    expect(manifest).toMatchObject({ app: "sample-app", build_id: id, commit_sha: v1 });
    expect(build.size_bytes).toBe(manifest.size);

    // Read the chunks back from the primary bucket's own storage (the local R2 keeps each
    // object as a file; there is no chunk GET in the API yet), keyed by their content's hash.
    const blobs = new Map<string, string>();
    const dir = primaryBlobsDir(stack);
    for (const name of await readdir(dir)) blobs.set(await sha256File(join(dir, name)), name);
    const binary = join(root, "reassembled-sample-app");
    const file = await open(binary, "w");
    for (const chunk of manifest.chunks) {
      const name = blobs.get(chunk.digest);
      if (!name) throw new Error(`chunk ${chunk.digest} is not in the primary bucket`);
      const bytes = await readFile(join(dir, name));
      expect(bytes.length).toBe(chunk.size);
      await file.write(bytes);
    }
    await file.close();
    expect(await sha256File(binary)).toBe(manifest.sha256);

    await chmod(binary, 0o755);
    const port = await freePort();
    const app = spawn(binary, ["--port", String(port)], { stdio: "ignore" });
    try {
      let answer: Response | undefined;
      for (let i = 0; i < 50 && !answer; i++) {
        answer = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
        if (!answer) await sleep(100);
      }
      expect(await answer?.json()).toMatchObject({
        app: "sample-app",
        version: 1,
        build_id: String(id),
        commit_sha: v1,
      });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      app.kill("SIGTERM");
    }

    const lines = await api.logLines(id);
    expect(lines).toContain(`compiling sample-app: build ${id}, commit ${v1}`);
    const events = w
      .events()
      .filter((e) => e.build_id === id)
      .map((e) => e.event);
    expect(events).toEqual(
      expect.arrayContaining([
        "build:claimed",
        "chunk:uploaded",
        "build:uploaded",
        "build:completed",
      ]),
    );
  });
});

describe("build failures", () => {
  let w: WorkerProcess;
  const ids: Record<string, number> = {};
  beforeAll(async () => {
    ids.fails = await api.queueBuild("fails", v1);
    ids.hangs = await api.queueBuild("hangs", v1);
    ids.unknown = await api.queueBuild("sample-app", "1".repeat(40));
    ids.canceled = await api.queueBuild("runs-long", v1);
    w = worker(["--slots", "4"]);
  });
  afterAll(async () => {
    await stopCleanly(w);
  }, 30_000);

  it("a build command that exits non-zero is FAILED(build_error) with its output in the logs", async () => {
    const b = await api.waitForBuild(ids.fails!, 30_000);
    expect(b).toMatchObject({ status: "FAILED", failure_reason: "build_error" });
    expect(b.failure_message).toBe("the build command exited with code 3");
    const lines = await api.logLines(ids.fails!);
    expect(lines).toContain("compiling...");
    expect(lines).toContain("error: widget.c:3: missing semicolon");
  });

  it("an unknown commit is FAILED(build_error), saying so", async () => {
    const b = await api.waitForBuild(ids.unknown!, 30_000);
    const message = `commit ${"1".repeat(40)} not found in ${repo.repoUrl}`;
    expect(b).toMatchObject({ status: "FAILED", failure_reason: "build_error" });
    expect(b.failure_message).toBe(message);
    expect((await api.logLines(ids.unknown!)).join("\n")).toContain(message);
  });

  it("a build past its timeout is FAILED(timeout) and its whole process group is gone", async () => {
    const b = await api.waitForBuild(ids.hangs!, 40_000);
    expect(b).toMatchObject({ status: "FAILED", failure_reason: "timeout" });
    // Stopped by the worker at 10 s, not left for the reaper.
    expect(b.failure_message).toBe("the build ran longer than its timeout of 10000 ms");
    const pgid = startedPgid(w, ids.hangs!);
    groups.push(pgid);
    // Both sleeps (the shell's child and the one it put in the background) went with it.
    expect(await liveProcessesInGroup(pgid)).toEqual([]);
    expect(await api.logLines(ids.hangs!)).toContain("hanging");
  });

  it("a canceled build is killed at its next heartbeat and reported no more", async () => {
    await w.waitFor(
      (e) => e.event === "build:command-started" && e.build_id === ids.canceled,
      20_000,
    );
    const pgid = startedPgid(w, ids.canceled!);
    groups.push(pgid);
    expect(await liveProcessesInGroup(pgid)).not.toEqual([]);
    // Once its log lines are in, only a heartbeat can tell the worker (sleep prints nothing).
    for (let i = 0; i < 100; i++) {
      if ((await api.logLines(ids.canceled!)).includes("[fleetship] running: sleep 600")) break;
      await sleep(100);
    }
    const r = await api.call("POST", `/v1/builds/${ids.canceled}/cancel`, { token: "deployer" });
    expect(r.status).toBe(200);
    const abandoned = await w.waitFor(
      (e) => e.event === "build:abandoned" && e.build_id === ids.canceled,
      15_000,
    );
    expect(abandoned.code).toBe("build_canceled");
    expect(await liveProcessesInGroup(pgid)).toEqual([]);
    const b = await api.build(ids.canceled!);
    expect(b).toMatchObject({ status: "FAILED", failure_reason: "canceled" });
  });
});

describe("losing a worker", () => {
  it("a worker killed mid-build: the reaper requeues the build, another worker completes it, the first's late completion is refused", async () => {
    const id = await api.queueBuild("slow-app", v2);
    const first = worker();
    await first.waitFor((e) => e.event === "build:command-started" && e.build_id === id, 30_000);
    // The first attempt's lease token, read where the control plane keeps it.
    const db = createClient({ url: stack.libsqlUrl });
    const row = await db.execute({
      sql: "SELECT lease_token FROM builds WHERE id = ?",
      args: [id],
    });
    const firstLease = String(row.rows[0]?.lease_token);
    db.close();
    expect(firstLease).toMatch(/^[0-9a-f]{32}$/);

    const killed = Date.now();
    await first.stop("SIGKILL");
    // The orphaned build goes too (a dead worker cannot kill it; its machine would).
    killGroup(startedPgid(first, id));

    const second = worker();
    try {
      const requeued = await api.waitForBuild(id, 90_000, (b) => b.attempt === 2);
      const requeuedAfter = Date.now() - killed;
      expect(requeued.status).toBe("RUNNING");
      const done = await api.waitForBuild(id, 60_000);
      expect(done, second.output()).toMatchObject({
        status: "SUCCEEDED",
        attempt: 2,
        worker_id: second.workerId,
      });
      console.log(`build-worker: killed worker's build re-claimed after ${requeuedAfter} ms`);

      const manifest = await signedManifest(id);
      const late = await api.call("POST", `/v1/worker/builds/${id}/complete`, {
        token: "builder",
        body: { lease_token: firstLease, manifest },
      });
      expect(late.status).toBe(409);
      expect(late.body.error.code).toBe("lease_lost");
      const beat = await api.call("POST", `/v1/worker/builds/${id}/heartbeat`, {
        token: "builder",
        body: { lease_token: firstLease },
      });
      expect(beat.status).toBe(409);
      expect((await api.build(id)).status).toBe("SUCCEEDED");
    } finally {
      await stopCleanly(second);
    }
  }, 150_000);

  it("SIGTERM: after the grace period the running build is killed and failed as infrastructure (requeued), and the worker exits 0", async () => {
    const id = await api.queueBuild("runs-long", v2);
    const w = worker(["--grace-s", "1"]);
    await w.waitFor((e) => e.event === "build:command-started" && e.build_id === id, 30_000);
    const pgid = startedPgid(w, id);
    groups.push(pgid);
    const stopping = Date.now();
    expect(await w.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopping).toBeLessThan(10_000);
    expect(await liveProcessesInGroup(pgid)).toEqual([]);
    const b = await api.build(id);
    expect(b).toMatchObject({ status: "QUEUED", failure_message: "worker shutting down" });
    // Out of the way of the next tests.
    expect((await api.call("POST", `/v1/builds/${id}/cancel`, { token: "deployer" })).status).toBe(
      200,
    );
  }, 60_000);
});

describe("large artifacts", () => {
  it("a build that changes ~1% of a 96 MiB artifact uploads only the changed chunks", async () => {
    const w = worker(["--chunk-sizes", "64k,256k,1m"]);
    try {
      const first = await api.queueBuild("big-app", v1);
      expect(await api.waitForBuild(first, 90_000)).toMatchObject({ status: "SUCCEEDED" });
      const second = await api.queueBuild("big-app", v2);
      expect(await api.waitForBuild(second, 90_000)).toMatchObject({ status: "SUCCEEDED" });

      const [m1, m2] = [await signedManifest(first), await signedManifest(second)];
      expect(m2.size).toBeGreaterThan(96 * MiB);
      // What v2 needs and v1 did not already store: exactly what should have been sent.
      const had = new Set(m1.chunks.map((c) => c.digest));
      const fresh = new Map(
        m2.chunks.filter((c) => !had.has(c.digest)).map((c) => [c.digest, c.size]),
      );
      const freshBytes = [...fresh.values()].reduce((a, b) => a + b, 0);
      const summary = await uploaded(w, second);
      console.log(
        `build-worker: second build uploaded ${summary.chunks_uploaded}/${summary.chunks_total} chunks, ` +
          `${summary.bytes_uploaded}/${summary.bytes_total} bytes (${((100 * summary.bytes_uploaded) / summary.bytes_total).toFixed(2)}%)`,
      );
      expect(summary.bytes_total).toBe(m2.size);
      expect(summary.chunks_uploaded).toBe(fresh.size);
      expect(summary.bytes_uploaded).toBe(freshBytes);
      expect(summary.bytes_uploaded).toBeGreaterThan(0);
      expect(summary.bytes_uploaded).toBeLessThanOrEqual(0.05 * m2.size);
      const firstSummary = await uploaded(w, first);
      expect(firstSummary.bytes_uploaded).toBeGreaterThan(0.9 * m1.size);
    } finally {
      await stopCleanly(w);
    }
  }, 180_000);

  it("a 1 GiB artifact uploads with the worker's peak RSS under 400 MiB", async () => {
    const w = worker();
    try {
      const started = Date.now();
      const id = await api.queueBuild("huge-app", v1);
      const b = await api.waitForBuild(id, 150_000);
      expect(b).toMatchObject({ status: "SUCCEEDED" });
      const peakKiB = await w.peakRssKiB();
      const summary = await uploaded(w, id);
      const chunked = (await w.waitFor(
        (e) => e.event === "build:chunked" && e.build_id === id,
        1_000,
      )) as WorkerEvent & Record<string, number>;
      console.log(
        `build-worker: 1 GiB build in ${Date.now() - started} ms (chunking ${chunked.ms} ms, ` +
          `upload ${summary.ms} ms of ${summary.bytes_uploaded} bytes), worker peak RSS ${Math.round(peakKiB / 1024)} MiB`,
      );
      expect(b.size_bytes).toBeGreaterThan(1024 * MiB);
      expect(summary.bytes_uploaded).toBeGreaterThan(1000 * MiB);
      expect(peakKiB).toBeLessThan(400 * 1024);
      // The attempt's checkout (and its 1 GiB artifact) is gone from the workspace: the worker
      // removes it after completing, so it may take a moment after SUCCEEDED.
      await expect
        .poll(() => readdir(join(root, `workspace-${workers}`, "builds")), { timeout: 20_000 })
        .toEqual([]);
    } finally {
      await stopCleanly(w);
    }
  }, 200_000);
});
