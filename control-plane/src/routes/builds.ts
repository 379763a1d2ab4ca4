import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import { stream } from "hono/streaming";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { requireRole } from "../auth/tokens.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { BUILD_STATUSES, builds } from "../db/schema.ts";
import { ApiError, badRequest, notFound } from "../errors.ts";
import { type BuildRow, buildView } from "../queue/build-view.ts";
import { cancel } from "../queue/cancel.ts";
import { createBuild } from "../queue/create-build.ts";
import { formatCursor, parseCursor, readLogs } from "../queue/read-logs.ts";
import { tickerStub } from "../queue/ticker.ts";
import { retryReplication } from "../replication/resume.ts";
import { targetRegions } from "../replication/start.ts";
import { replicationStatus } from "../replication/status.ts";
import { CommitSha, errors, IdParam, json, jsonBody, Region, Slug, security } from "./schemas.ts";

export const Build = z
  .object({
    id: z.number(),
    app: z.string(),
    commit_sha: z.string(),
    status: z.enum(BUILD_STATUSES),
    failure_reason: z.string().nullable(),
    failure_message: z.string().nullable(),
    attempt: z.number(),
    max_attempts: z.number(),
    timeout_ms: z.number(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
    run_after: z.string().nullable(),
    worker_id: z.string().nullable(),
    last_heartbeat: z.string().nullable(),
    lease_expires_at: z.string().nullable(),
    manifest_digest: z.string().nullable(),
    size_bytes: z.number().nullable(),
    created_by: z.string().nullable(),
  })
  .openapi("Build");

const RegionReplication = z.object({
  region: z.string(),
  status: z.enum(["PENDING", "COPYING", "COMPLETE", "FAILED"]),
  chunks_total: z.number(),
  chunks_done: z.number(),
  bytes_total: z.number(),
  bytes_done: z.number(),
  percent: z.number(),
  error: z.string().nullable(),
  updated_at: z.string(),
});

export const BuildDetail = Build.extend({
  deployable: z.boolean(),
  replication: z.array(RegionReplication),
}).openapi("BuildDetail");

const CreateBuild = z
  .strictObject({ app: Slug, commit_sha: CommitSha, force: z.boolean().optional() })
  .openapi("CreateBuild");

const create = createRoute({
  method: "post",
  path: "/v1/builds",
  summary: "Queue a build of a commit (idempotent per app and commit unless force)",
  tags: ["builds"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: { body: jsonBody(CreateBuild) },
  responses: {
    201: json(Build, "queued"),
    200: json(Build, "the existing build of that commit"),
    ...errors(400, 401, 403, 404),
  },
});

const ListQuery = z.strictObject({
  app: Slug.optional(),
  status: z.enum(BUILD_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^\d{1,15}$/, "must be a next_cursor this endpoint returned")
    .optional(),
});

const list = createRoute({
  method: "get",
  path: "/v1/builds",
  summary: "Builds, newest first, paginated",
  tags: ["builds"],
  security,
  middleware: [requireRole("any")] as const,
  request: { query: ListQuery },
  responses: {
    200: json(z.object({ builds: z.array(Build), next_cursor: z.string().nullable() }), "a page"),
    ...errors(400, 401),
  },
});

const get = createRoute({
  method: "get",
  path: "/v1/builds/{id}",
  summary:
    "One build: status, failure reason, attempts, timings, per-region replication, deployable",
  tags: ["builds"],
  security,
  middleware: [requireRole("any")] as const,
  request: { params: IdParam },
  responses: { 200: json(BuildDetail, "the build"), ...errors(400, 401, 404) },
});

const retryReplicationRoute = createRoute({
  method: "post",
  path: "/v1/builds/{id}/replication/retry",
  summary: "Retry a build's FAILED replication (all regions, or one)",
  tags: ["builds"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: {
    params: IdParam,
    body: {
      required: false,
      content: { "application/json": { schema: z.strictObject({ region: Region.optional() }) } },
    },
  },
  responses: { 200: json(BuildDetail, "retrying"), ...errors(400, 401, 403, 404, 409) },
});

const LogsQuery = z.strictObject({
  after: z
    .string()
    .regex(/^\d{1,6}:\d{1,12}$/, "must be a cursor this endpoint returned")
    .optional(),
  follow: z.enum(["0", "1", "true", "false"]).optional(),
});

const LogLine = z.object({
  attempt: z.number(),
  seq: z.number(),
  ts: z.string(),
  line: z.string(),
});

const logs = createRoute({
  method: "get",
  path: "/v1/builds/{id}/logs",
  summary: "Build log; with follow=1, NDJSON lines streamed until the build ends",
  tags: ["builds"],
  security,
  middleware: [requireRole("any")] as const,
  request: { params: IdParam, query: LogsQuery },
  responses: {
    200: json(
      z.object({
        build_id: z.number(),
        status: z.enum(BUILD_STATUSES),
        lines: z.array(LogLine),
        next_cursor: z.string().nullable(),
      }),
      "log lines (application/x-ndjson when following)",
    ),
    ...errors(400, 401, 404),
  },
});

const cancelRoute = createRoute({
  method: "post",
  path: "/v1/builds/{id}/cancel",
  summary: "Cancel a queued or running build → FAILED(canceled)",
  tags: ["builds"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: { params: IdParam },
  responses: { 200: json(Build, "canceled"), ...errors(400, 401, 403, 404, 409) },
});

/** How long one follow request streams before it asks the client to reconnect. */
const FOLLOW_LIMIT_MS = 10 * 60_000;
const FOLLOW_POLL_MS = 1_000;

export function registerBuilds(app: App): void {
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const config = c.get("config");
    const { build, created } = await createBuild(c.get("db"), actorOf(c), {
      app: body.app,
      commitSha: body.commit_sha,
      force: body.force ?? false,
      maxAttempts: config.maxAttempts,
      defaultTimeoutMs: config.buildTimeoutMs,
    });
    // The reaper's sub-minute ticker must run whenever there is work (cron alone is per minute).
    if (created) c.executionCtx.waitUntil(tickerStub(c.env).ensureTicking());
    return created ? c.json(buildView(build), 201) : c.json(buildView(build), 200);
  });

  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const rows = await c
      .get("db")
      .select()
      .from(builds)
      .where(
        and(
          q.app ? eq(builds.app, q.app) : undefined,
          q.status ? eq(builds.status, q.status) : undefined,
          q.cursor ? lt(builds.id, Number(q.cursor)) : undefined,
        ),
      )
      .orderBy(desc(builds.id))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    const next = rows.length > q.limit ? String(page.at(-1)!.id) : null;
    return c.json({ builds: page.map(buildView), next_cursor: next }, 200);
  });

  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await detail(c.get("db"), c.get("config"), await mustGet(c.get("db"), id)), 200);
  });

  app.openapi(retryReplicationRoute, async (c) => {
    const { id } = c.req.valid("param");
    const region = c.req.valid("json")?.region;
    const db = c.get("db");
    const build = await mustGet(db, id);
    if (build.status !== "SUCCEEDED") {
      throw new ApiError(
        409,
        "not_succeeded",
        `build ${id} is ${build.status}; only SUCCEEDED builds replicate`,
      );
    }
    if (region && !c.get("config").regions.includes(region))
      throw badRequest(`unknown region ${region}`);
    const n = await retryReplication(c.env, db, id, region);
    if (n === 0)
      throw new ApiError(
        409,
        "nothing_failed",
        `build ${id} has no FAILED replication${region ? ` in ${region}` : ""}`,
      );
    await db.batch([
      auditInsert(db, actorOf(c), {
        action: "replication.retry",
        target: `build:${id}`,
        details: { region: region ?? null, batches: n },
      }),
    ]);
    return c.json(await detail(db, c.get("config"), build), 200);
  });

  app.openapi(logs, async (c) => {
    const { id } = c.req.valid("param");
    const q = c.req.valid("query");
    const db = c.get("db");
    const build = await mustGet(db, id);
    const after = parseCursor(q.after);
    if (q.after && !after) throw badRequest("after must be a cursor this endpoint returned");
    if (q.follow !== "1" && q.follow !== "true") {
      const page = await readLogs(db, id, after);
      return c.json(
        {
          build_id: id,
          status: build.status,
          lines: page.lines,
          next_cursor: page.cursor ? formatCursor(page.cursor) : null,
        },
        200,
      );
    }
    c.header("Content-Type", "application/x-ndjson");
    c.header("Cache-Control", "no-store");
    return stream(c, async (out) => {
      const deadline = Date.now() + FOLLOW_LIMIT_MS;
      let cursor = after;
      for (;;) {
        const current = await mustGet(db, id);
        const page = await readLogs(db, id, cursor);
        for (const l of page.lines) await out.write(`${JSON.stringify(l)}\n`);
        cursor = page.cursor;
        const ended = current.status === "SUCCEEDED" || current.status === "FAILED";
        if (ended && page.lines.length === 0) {
          await out.write(
            `${JSON.stringify({ end: true, status: current.status, failure_reason: current.failureReason, failure_message: current.failureMessage })}\n`,
          );
          return;
        }
        if (Date.now() > deadline) {
          await out.write(
            `${JSON.stringify({ end: false, reconnect_after: cursor ? formatCursor(cursor) : null })}\n`,
          );
          return;
        }
        if (page.lines.length === 0) await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      }
    }) as never;
  });

  app.openapi(cancelRoute, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(buildView(await cancel(c.get("db"), actorOf(c), id)), 200);
  });
}

async function detail(db: Db, config: Config, build: BuildRow) {
  const targets = await targetRegions(db, config, build.app);
  const { regions, deployable } = await replicationStatus(db, build.id, targets);
  return {
    ...buildView(build),
    deployable: build.status === "SUCCEEDED" && deployable,
    replication: regions,
  };
}

async function mustGet(db: Db, id: number): Promise<BuildRow> {
  const b = await db.query.builds.findFirst({ where: eq(builds.id, id) });
  if (!b) throw notFound("build", id);
  return b;
}
