// deno-lint-ignore-file require-await -- fakes implement async contracts without awaiting
import assert from "node:assert/strict";
import type { Claimed, ControlPlane, FailReason } from "./api.ts";
import { silentLogger } from "./log.ts";
import { WorkerPool } from "./worker-pool.ts";

function claimOf(id: number): Claimed {
  return {
    build: {
      id,
      app: "demo",
      commit_sha: "a".repeat(40),
      status: "RUNNING",
      attempt: 1,
      timeout_ms: 60_000,
      worker_id: "w",
    },
    app: { name: "demo", repo_url: "file:///r", build_command: "make", artifact_path: "out/x" },
    lease_token: `${id}`.padStart(32, "0"),
    lease_expires_at: "2026-01-01T00:00:00.000Z",
    heartbeat_interval_ms: 15_000,
  };
}

/** A control plane whose claims are answered by `answer` (which may wait). */
function fakeApi(answer: (signal: AbortSignal | undefined) => Promise<Claimed | null>) {
  const failed: { id: number; reason: FailReason; message: string }[] = [];
  const unused = () => Promise.reject(new Error("not used"));
  const api: ControlPlane = {
    claim: (_w, _s, signal) => answer(signal),
    heartbeat: unused,
    appendLogs: unused,
    complete: unused,
    async fail(id, f) {
      failed.push({ id, reason: f.reason, message: f.message });
    },
    getBuild: unused,
    missingChunks: unused,
    putChunk: unused,
  };
  return { api, failed };
}

Deno.test("WorkerPool runs what it claims until it stops claiming", async () => {
  const stopClaiming = new AbortController();
  let n = 0;
  const { api } = fakeApi(async () => (++n <= 3 ? claimOf(n) : null));
  const ran: number[] = [];
  const pool = new WorkerPool({
    api,
    logger: silentLogger,
    workerId: "w",
    slots: 1,
    claimWaitS: 0,
    runAttempt: async (claim) => {
      ran.push(claim.build.id);
      if (ran.length === 3) stopClaiming.abort();
      return { kind: "succeeded" };
    },
    stopClaiming: stopClaiming.signal,
    abortBuilds: new AbortController().signal,
  });
  await pool.run();
  assert.deepEqual(ran, [1, 2, 3]);
});

Deno.test("WorkerPool waits for a claim under way when it stops, and hands its build back", async () => {
  const stopClaiming = new AbortController();
  let claimSignal: AbortSignal | undefined;
  const { api, failed } = fakeApi(async (signal) => {
    claimSignal = signal;
    stopClaiming.abort(); // the signal arrives while the claim long-polls…
    await new Promise((r) => setTimeout(r, 20));
    return claimOf(9); // …and the control plane answers with a build
  });
  const pool = new WorkerPool({
    api,
    logger: silentLogger,
    workerId: "w",
    slots: 1,
    claimWaitS: 0,
    runAttempt: async () => assert.fail("nothing runs during a shutdown"),
    stopClaiming: stopClaiming.signal,
    abortBuilds: new AbortController().signal,
  });
  await pool.run();
  assert.equal(claimSignal?.aborted, false, "the claim was not cut short");
  assert.deepEqual(failed, [{ id: 9, reason: "infrastructure", message: "worker shutting down" }]);
});

Deno.test("WorkerPool backs off after a failed claim and tries again", async () => {
  const stopClaiming = new AbortController();
  let calls = 0;
  const { api } = fakeApi(async () => {
    calls++;
    if (calls === 1) throw new Error("connection refused");
    stopClaiming.abort();
    return null;
  });
  const pool = new WorkerPool({
    api,
    logger: silentLogger,
    workerId: "w",
    slots: 1,
    claimWaitS: 0,
    runAttempt: async () => assert.fail("nothing to run"),
    stopClaiming: stopClaiming.signal,
    abortBuilds: new AbortController().signal,
  });
  const started = Date.now();
  await pool.run();
  assert.equal(calls, 2);
  assert.ok(Date.now() - started >= 500, "waited before trying again");
});
