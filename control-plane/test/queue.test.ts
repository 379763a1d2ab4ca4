import { sql } from "drizzle-orm";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { reap } from "../src/queue/reap.ts";
import { claimOne, manifestFor, queueBuild, registerApp, sha } from "./fixtures.ts";
import { call, db, mintToken, resetDb, snapshot } from "./helpers.ts";

let admin: string;
let deployer: string;
let builder: string;

beforeAll(async () => {
  await resetDb();
  admin = await mintToken("admin");
  deployer = await mintToken("deployer");
  builder = await mintToken("builder");
  await registerApp(admin, "web");
});

beforeEach(async () => {
  await db.run(sql`DELETE FROM build_logs`);
  await db.run(sql`DELETE FROM builds`);
});

/** Fake time for the queue: moves a build's lease or start into the past. */
async function expireLease(id: number): Promise<void> {
  await db.run(sql`UPDATE builds SET lease_expires_at = 1 WHERE id = ${id}`);
}

const getBuild = async (id: number) =>
  (await call("GET", `/v1/builds/${id}`, { token: deployer })).body;

describe("POST /v1/builds", () => {
  it("queues a build once per (app, commit) and again only with force", async () => {
    const commit = sha();
    const first = await call("POST", "/v1/builds", {
      token: deployer,
      body: { app: "web", commit_sha: commit },
    });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      app: "web",
      commit_sha: commit,
      status: "QUEUED",
      attempt: 0,
    });
    const again = await call("POST", "/v1/builds", {
      token: deployer,
      body: { app: "web", commit_sha: commit },
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const forced = await call("POST", "/v1/builds", {
      token: deployer,
      body: { app: "web", commit_sha: commit, force: true },
    });
    expect(forced.status).toBe(201);
    expect(forced.body.id).not.toBe(first.body.id);
  });

  it("makes one build when the same commit is requested concurrently", async () => {
    const commit = sha();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        call("POST", "/v1/builds", { token: deployer, body: { app: "web", commit_sha: commit } }),
      ),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
  });

  it.each([
    ["a short SHA", { app: "web", commit_sha: "abc123" }, 400, "invalid_input"],
    ["an uppercase SHA", { app: "web", commit_sha: "A".repeat(40) }, 400, "invalid_input"],
    ["an unknown field", { app: "web", commit_sha: sha(), priority: 1 }, 400, "invalid_input"],
    ["a bad app name", { app: "Web App", commit_sha: sha() }, 400, "invalid_input"],
    ["an unknown app", { app: "nope", commit_sha: sha() }, 404, "not_found"],
    ["a wrong-typed force", { app: "web", commit_sha: sha(), force: "yes" }, 400, "invalid_input"],
  ])("refuses %s and changes nothing", async (_what, body, status, code) => {
    const before = await snapshot();
    const r = await call("POST", "/v1/builds", { token: deployer, body });
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(r.body.error.message).toBeTruthy();
    expect(await snapshot()).toEqual(before);
  });

  it("refuses malformed JSON and an oversized body, changing nothing", async () => {
    const before = await snapshot();
    const bad = await call("POST", "/v1/builds", { token: deployer, body: "{not json" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_input");
    const huge = await call("POST", "/v1/builds", {
      token: deployer,
      body: { app: "web", commit_sha: sha(), pad: "x".repeat(300_000) },
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe("too_large");
    expect(await snapshot()).toEqual(before);
  });
});

describe("GET /v1/builds", () => {
  it("lists newest first with filters and a cursor that pages through everything", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) ids.push(await queueBuild(deployer, "web"));
    await call("POST", `/v1/builds/${ids[0]}/cancel`, { token: deployer });
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : "";
      const page = await call("GET", `/v1/builds?app=web&limit=3${q}`, { token: builder });
      expect(page.status).toBe(200);
      seen.push(...page.body.builds.map((b: { id: number }) => b.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const failed = await call("GET", "/v1/builds?status=FAILED", { token: builder });
    expect(failed.body.builds.map((b: { id: number }) => b.id)).toEqual([ids[0]]);
    const bad = await call("GET", "/v1/builds?limit=0", { token: builder });
    expect(bad.status).toBe(400);
    const badStatus = await call("GET", "/v1/builds?status=DONE", { token: builder });
    expect(badStatus.status).toBe(400);
  });
});

describe("claim()", () => {
  it("hands builds out first in, first out", async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await queueBuild(deployer, "web"));
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await claimOne(builder))!.id);
    expect(got).toEqual(ids);
    expect(await claimOne(builder)).toBeUndefined();
  });

  it("never hands one attempt to two workers: 50 claimers over 500 builds", async () => {
    await db.run(
      sql`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
          INSERT INTO builds (app, commit_sha, status, max_attempts, timeout_ms, created_at)
          SELECT 'web', printf('%040x', i), 'QUEUED', 3, 600000, 1000 + i FROM n`,
    );
    const claimed: { worker: string; id: number; attempt: number }[] = [];
    await Promise.all(
      Array.from({ length: 50 }, async (_, w) => {
        for (;;) {
          const c = await claimOne(builder, `w${w}`);
          if (!c) return;
          claimed.push({ worker: `w${w}`, id: c.id, attempt: c.attempt });
        }
      }),
    );
    expect(claimed).toHaveLength(500);
    expect(new Set(claimed.map((c) => c.id)).size).toBe(500);
    expect(claimed.every((c) => c.attempt === 1)).toBe(true);
    const [{ n }] = (await db.all(
      sql`SELECT count(*) AS n FROM builds WHERE status = 'RUNNING'`,
    )) as [{ n: number }];
    expect(n).toBe(500);
  });

  it("long-polls with wait_s until a build is queued", async () => {
    const started = Date.now();
    const waiting = call("POST", "/v1/worker/claim", {
      token: builder,
      body: { worker_id: "lp", wait_s: 5 },
    });
    await new Promise((r) => setTimeout(r, 400));
    const id = await queueBuild(deployer, "web");
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(r.body.build.id).toBe(id);
    expect(Date.now() - started).toBeLessThan(4000);
    const empty = await call("POST", "/v1/worker/claim", {
      token: builder,
      body: { worker_id: "lp", wait_s: 1 },
    });
    expect(empty.status).toBe(204);
  });

  it("returns what the worker needs: app details, lease and heartbeat cadence", async () => {
    await queueBuild(deployer, "web");
    const r = await call("POST", "/v1/worker/claim", { token: builder, body: { worker_id: "w9" } });
    expect(r.body).toMatchObject({
      app: { name: "web", build_command: "make", artifact_path: "out/app" },
      build: { status: "RUNNING", attempt: 1, worker_id: "w9" },
      heartbeat_interval_ms: 15_000,
    });
    expect(r.body.lease_token).toMatch(/^[0-9a-f]{32}$/);
    expect(Date.parse(r.body.lease_expires_at) - Date.now()).toBeGreaterThan(50_000);
  });
});

describe("leases", () => {
  it("heartbeat extends the lease; a stale token is refused everywhere and changes nothing", async () => {
    const id = await queueBuild(deployer, "web");
    const a = (await claimOne(builder, "A"))!;
    const hb = await call("POST", `/v1/worker/builds/${id}/heartbeat`, {
      token: builder,
      body: { lease_token: a.lease },
    });
    expect(hb.status).toBe(200);
    await expireLease(id);
    await reap(db);
    const b = (await claimOne(builder, "B"))!;
    expect(b).toMatchObject({ id, attempt: 2 });
    const before = await snapshot();
    const calls = [
      ["heartbeat", { lease_token: a.lease }],
      ["logs", { lease_token: a.lease, seq: 0, lines: ["late"] }],
      ["complete", { lease_token: a.lease, manifest: manifestFor(a) }],
      ["fail", { lease_token: a.lease, reason: "build_error", message: "late" }],
    ] as const;
    for (const [op, body] of calls) {
      const r = await call("POST", `/v1/worker/builds/${id}/${op}`, { token: builder, body });
      expect(r.status, op).toBe(409);
      expect(r.body.error.code, op).toBe("lease_lost");
    }
    expect(await snapshot()).toEqual(before);
    const ok = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: b.lease, manifest: manifestFor(b) },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe("SUCCEEDED");
  });

  it("complete and fail are idempotent for the same lease", async () => {
    const id1 = await queueBuild(deployer, "web");
    const id2 = await queueBuild(deployer, "web");
    const c1 = (await claimOne(builder))!;
    const c2 = (await claimOne(builder))!;
    const done = { lease_token: c1.lease, manifest: manifestFor(c1) };
    const r1 = await call("POST", `/v1/worker/builds/${id1}/complete`, {
      token: builder,
      body: done,
    });
    const r2 = await call("POST", `/v1/worker/builds/${id1}/complete`, {
      token: builder,
      body: done,
    });
    expect([r1.status, r2.status]).toEqual([200, 200]);
    expect(r2.body).toEqual(r1.body);
    const failBody = {
      lease_token: c2.lease,
      reason: "build_error",
      message: "make: *** [all] Error 2",
    };
    const f1 = await call("POST", `/v1/worker/builds/${id2}/fail`, {
      token: builder,
      body: failBody,
    });
    const f2 = await call("POST", `/v1/worker/builds/${id2}/fail`, {
      token: builder,
      body: failBody,
    });
    expect([f1.status, f2.status]).toEqual([200, 200]);
    expect(f1.body).toMatchObject({ status: "FAILED", failure_reason: "build_error" });
    expect(f2.body).toEqual(f1.body);
    const audit = await call("GET", `/v1/audit?target=build:${id2}`, { token: admin });
    expect(
      audit.body.entries.filter((e: { action: string }) => e.action === "build.fail"),
    ).toHaveLength(1);
  });

  it("an infrastructure failure is retried after a backoff, a build failure is not", async () => {
    const id = await queueBuild(deployer, "web");
    const c = (await claimOne(builder))!;
    const r = await call("POST", `/v1/worker/builds/${id}/fail`, {
      token: builder,
      body: { lease_token: c.lease, reason: "infrastructure", message: "disk full" },
    });
    expect(r.body).toMatchObject({ status: "QUEUED", failure_reason: null, attempt: 1 });
    expect(Date.parse(r.body.run_after) - Date.now()).toBeGreaterThan(3000);
    expect(await claimOne(builder)).toBeUndefined();
    await db.run(sql`UPDATE builds SET run_after = 0 WHERE id = ${id}`);
    expect(await claimOne(builder)).toMatchObject({ id, attempt: 2 });
  });
});

describe("reap()", () => {
  it("puts a dead worker's build back at the front of the queue", async () => {
    const first = await queueBuild(deployer, "web");
    const second = await queueBuild(deployer, "web");
    expect((await claimOne(builder, "dead"))!.id).toBe(first);
    await expireLease(first);
    const result = await reap(db);
    expect(result.requeued).toEqual([first]);
    expect(await getBuild(first)).toMatchObject({ status: "QUEUED", attempt: 1 });
    expect(await claimOne(builder, "alive")).toMatchObject({ id: first, attempt: 2 });
    expect((await claimOne(builder, "alive"))!.id).toBe(second);
  });

  it("fails a build as lost after its last attempt", async () => {
    const id = await queueBuild(deployer, "web");
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(await claimOne(builder)).toMatchObject({ id, attempt });
      await expireLease(id);
      await reap(db);
    }
    expect(await getBuild(id)).toMatchObject({
      status: "FAILED",
      failure_reason: "lost",
      attempt: 3,
    });
    expect(await claimOne(builder)).toBeUndefined();
  });

  it("fails a build that runs past its timeout, and its worker learns it from the heartbeat", async () => {
    const id = await queueBuild(deployer, "web");
    const c = (await claimOne(builder))!;
    await db.run(
      sql`UPDATE builds SET started_at = started_at - timeout_ms - 1000 WHERE id = ${id}`,
    );
    expect((await reap(db)).timedOut).toEqual([id]);
    expect(await getBuild(id)).toMatchObject({ status: "FAILED", failure_reason: "timeout" });
    const hb = await call("POST", `/v1/worker/builds/${id}/heartbeat`, {
      token: builder,
      body: { lease_token: c.lease },
    });
    expect(hb.status).toBe(409);
    expect(hb.body.error.code).toBe("build_timed_out");
  });

  it("leaves healthy running builds alone", async () => {
    const id = await queueBuild(deployer, "web");
    await claimOne(builder);
    expect(await reap(db)).toEqual({ timedOut: [], requeued: [], lost: [] });
    expect((await getBuild(id)).status).toBe("RUNNING");
  });
});

describe("POST /v1/builds/:id/cancel", () => {
  it("cancels queued and running builds; the running worker's next heartbeat says so", async () => {
    const queued = await queueBuild(deployer, "web");
    const running = await queueBuild(deployer, "web");
    await call("POST", `/v1/builds/${queued}/cancel`, { token: deployer });
    const c = (await claimOne(builder))!;
    expect(c.id).toBe(running);
    const r = await call("POST", `/v1/builds/${running}/cancel`, { token: deployer });
    expect(r.body).toMatchObject({ status: "FAILED", failure_reason: "canceled" });
    const hb = await call("POST", `/v1/worker/builds/${running}/heartbeat`, {
      token: builder,
      body: { lease_token: c.lease },
    });
    expect(hb.status).toBe(409);
    expect(hb.body.error.code).toBe("build_canceled");
    expect((await call("POST", `/v1/builds/${running}/cancel`, { token: deployer })).status).toBe(
      200,
    );
  });

  it("refuses to cancel a finished build and a missing one", async () => {
    const id = await queueBuild(deployer, "web");
    const c = (await claimOne(builder))!;
    await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: manifestFor(c) },
    });
    const before = await snapshot();
    const r = await call("POST", `/v1/builds/${id}/cancel`, { token: deployer });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("already_finished");
    expect((await call("POST", "/v1/builds/999999/cancel", { token: deployer })).status).toBe(404);
    expect(await snapshot()).toEqual(before);
  });
});

describe("build logs", () => {
  it("appends numbered chunks idempotently and serves them in order, following until the end", async () => {
    const id = await queueBuild(deployer, "web");
    const c = (await claimOne(builder))!;
    const append = (seq: number, lines: string[]) =>
      call("POST", `/v1/worker/builds/${id}/logs`, {
        token: builder,
        body: { lease_token: c.lease, seq, lines },
      });
    expect((await append(0, ["cloning", "building"])).body).toEqual({ appended: true });
    expect((await append(1, ["linking"])).body).toEqual({ appended: true });
    expect((await append(0, ["cloning", "building"])).body).toEqual({ appended: false });
    const page = await call("GET", `/v1/builds/${id}/logs`, { token: deployer });
    expect(page.body.lines.map((l: { line: string }) => l.line)).toEqual([
      "cloning",
      "building",
      "linking",
    ]);
    const more = await call("GET", `/v1/builds/${id}/logs?after=${page.body.next_cursor}`, {
      token: deployer,
    });
    expect(more.body.lines).toEqual([]);

    const follow = call("GET", `/v1/builds/${id}/logs?follow=1&after=${page.body.next_cursor}`, {
      token: deployer,
    });
    await new Promise((r) => setTimeout(r, 300));
    await append(2, ["done"]);
    await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: manifestFor(c) },
    });
    const streamed = (await follow).body as string;
    const events = streamed
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ line: "done", attempt: 1, seq: 2 });
    expect(events.at(-1)).toMatchObject({ end: true, status: "SUCCEEDED" });
  });

  it("refuses oversized or empty log batches", async () => {
    const id = await queueBuild(deployer, "web");
    const c = (await claimOne(builder))!;
    const empty = await call("POST", `/v1/worker/builds/${id}/logs`, {
      token: builder,
      body: { lease_token: c.lease, seq: 0, lines: [] },
    });
    expect(empty.status).toBe(400);
    const tooMany = await call("POST", `/v1/worker/builds/${id}/logs`, {
      token: builder,
      body: { lease_token: c.lease, seq: 0, lines: Array.from({ length: 1001 }, () => "x") },
    });
    expect(tooMany.status).toBe(400);
  });
});

describe("/metrics", () => {
  it("shows queue depth, oldest age and claim counts", async () => {
    await queueBuild(deployer, "web");
    await queueBuild(deployer, "web");
    await claimOne(builder);
    const r = await call("GET", "/metrics");
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^fleetship_queue_depth 1$/m);
    expect(r.body).toMatch(/^fleetship_builds\{status="RUNNING"\} 1$/m);
    expect(r.body).toMatch(/^fleetship_queue_claims_total [1-9]\d*$/m);
    expect(r.body).toMatch(/^fleetship_queue_oldest_age_seconds \d/m);
  });
});
