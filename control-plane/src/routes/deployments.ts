import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { requireRole } from "../auth/tokens.ts";
import type { Db } from "../db/client.ts";
import { DEPLOYMENT_STATUSES, deployments } from "../db/schema.ts";
import { createDeployment, type DeploymentRow } from "../deployments/create.ts";
import { rollbackDeployment } from "../deployments/rollback.ts";
import { deploymentProgress, rolloutStub } from "../deployments/rollout.ts";
import { StrategySchema } from "../deployments/strategy.ts";
import type { Env } from "../env.ts";
import { ApiError, notFound } from "../errors.ts";
import { errors, IdParam, json, jsonBody, Slug, security } from "./schemas.ts";

const CreateDeployment = z
  .strictObject({
    app: Slug,
    build_id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    strategy: StrategySchema.optional(),
    wait_for_machines: z.boolean().optional().openapi({
      description:
        "deploy even when no connected machine of a target region matches the app's placement (otherwise 409 no_placed_machines)",
    }),
  })
  .openapi("CreateDeployment");

const Counts = z.object({
  pending: z.number(),
  downloading: z.number(),
  installed: z.number(),
  healthy: z.number(),
  failed: z.number(),
  unreachable: z.number(),
});

const Deployment = z
  .object({
    id: z.number(),
    app: z.string(),
    build_id: z.number(),
    previous_build_id: z.number().nullable(),
    strategy: z.unknown(),
    status: z.enum(DEPLOYMENT_STATUSES),
    reason: z.string().nullable(),
    waiting: z.string().nullable(),
    generation: z.number().nullable(),
    rollback_of: z.number().nullable(),
    superseded_by: z.number().nullable(),
    created_by: z.string(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .openapi("Deployment");

const WaveView = z.object({
  name: z.string(),
  status: z.enum(["pending", "rolling", "baking", "passed", "failed"]),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  bake_until: z.string().nullable(),
  percent: z.number().nullable(),
  detail: z.string().nullable(),
});

const DeploymentDetail = Deployment.extend({
  waves: z.array(WaveView),
  paused_by: z.string().nullable(),
  regions: z.array(
    z.object({
      region: z.string(),
      machines: z.number(),
      counts: Counts,
      done: z.boolean(),
      waiting: z.string().nullable(),
      problems: z
        .array(
          z.object({
            machine_id: z.string(),
            problem: z.enum(["failed", "away", "restarting", "unreachable"]),
            state: z.string(),
            build_id: z.number().nullable(),
            detail: z.string().nullable(),
            restarts: z.number(),
          }),
        )
        .openapi({ description: "The app's machines that need a look, failed first (≤ 10)" }),
    }),
  ),
}).openapi("DeploymentDetail");

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
export function deploymentView(d: DeploymentRow) {
  return {
    id: d.id,
    app: d.app,
    build_id: d.buildId,
    previous_build_id: d.previousBuildId,
    strategy: d.strategy,
    status: d.status,
    reason: d.reason,
    waiting: d.status === "ROLLING" ? d.reason : null,
    generation: d.generation,
    rollback_of: d.rollbackOf,
    superseded_by: d.supersededBy,
    created_by: d.createdBy,
    created_at: iso(d.createdAt)!,
    finished_at: iso(d.finishedAt),
  };
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

async function detail(env: Env, db: Db, d: DeploymentRow) {
  const progress = await deploymentProgress(env, db, d);
  const view = deploymentView(d);
  const state = progress.rollout;
  return {
    ...view,
    waiting: progress.waiting,
    regions: progress.regions,
    paused_by: state?.paused?.by ?? null,
    waves: (state?.waves ?? []).map((w) => ({
      name: w.name,
      status: w.status,
      started_at: isoOrNull(w.started_at),
      finished_at: isoOrNull(w.finished_at),
      bake_until: isoOrNull(w.bake_until),
      percent: w.percent,
      detail: w.detail,
    })),
  };
}

async function mustGet(db: Db, id: number): Promise<DeploymentRow> {
  const d = await db.query.deployments.findFirst({ where: eq(deployments.id, id) });
  if (!d) throw notFound("deployment", id);
  return d;
}

const create = createRoute({
  method: "post",
  path: "/v1/deployments",
  summary:
    "Deploy a deployable build: sets the app's goal (409 with the reason when not deployable)",
  tags: ["deployments"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: { body: jsonBody(CreateDeployment) },
  responses: {
    201: json(DeploymentDetail, "recorded and the goal set"),
    ...errors(400, 401, 403, 404, 409),
  },
});

const list = createRoute({
  method: "get",
  path: "/v1/deployments",
  summary: "Deployment history, newest first",
  tags: ["deployments"],
  security,
  middleware: [requireRole("any")] as const,
  request: {
    query: z.strictObject({
      app: Slug.optional(),
      limit: z.coerce.number().int().min(1).max(200).default(50),
      cursor: z
        .string()
        .regex(/^\d{1,15}$/, "must be a next_cursor this endpoint returned")
        .optional(),
    }),
  },
  responses: {
    200: json(
      z.object({ deployments: z.array(Deployment), next_cursor: z.string().nullable() }),
      "a page",
    ),
    ...errors(400, 401),
  },
});

const get = createRoute({
  method: "get",
  path: "/v1/deployments/{id}",
  summary: "One deployment with per-region progress and what it is waiting for",
  tags: ["deployments"],
  security,
  middleware: [requireRole("any")] as const,
  request: { params: IdParam },
  responses: { 200: json(DeploymentDetail, "the deployment"), ...errors(400, 401, 404) },
});

const rollback = createRoute({
  method: "post",
  path: "/v1/deployments/{id}/rollback",
  summary: "Deploy the build this deployment replaced (a new, higher generation)",
  tags: ["deployments"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: { params: IdParam },
  responses: {
    201: json(DeploymentDetail, "the rollback deployment"),
    ...errors(400, 401, 403, 404, 409),
  },
});

const commandRoute = (verb: "pause" | "resume" | "abort", summary: string) =>
  createRoute({
    method: "post",
    path: `/v1/deployments/{id}/${verb}`,
    summary,
    tags: ["deployments"],
    security,
    middleware: [requireRole("deployer", "admin")] as const,
    request: { params: IdParam },
    responses: { 200: json(DeploymentDetail, "done"), ...errors(400, 401, 403, 404, 409) },
  });

export function registerDeployments(app: App): void {
  for (const [verb, summary] of [
    ["pause", "Hold a rollout where it is (the next wave does not start; 24 h at most)"],
    ["resume", "Let a paused rollout go on"],
    ["abort", "Stop a rollout and revert the regions it already changed"],
  ] as const) {
    app.openapi(commandRoute(verb, summary), async (c) => {
      const { id } = c.req.valid("param");
      const db = c.get("db");
      await mustGet(db, id);
      const actor = actorOf(c);
      const r = await rolloutStub(c.env, id).command({ type: verb, by: c.get("principal").name });
      if (!r.ok) throw new ApiError(409, "not_rolling", r.message);
      await db.batch([
        auditInsert(db, actor, { action: `deployment.${verb}`, target: `deployment:${id}` }),
      ]);
      return c.json(await detail(c.env, db, await mustGet(db, id)), 200);
    });
  }

  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const db = c.get("db");
    const row = await createDeployment(c.env, db, c.get("config"), actorOf(c), {
      app: body.app,
      buildId: body.build_id,
      strategy: body.strategy ?? { type: "all-at-once" },
      waitForMachines: body.wait_for_machines ?? false,
    });
    return c.json(await detail(c.env, db, row), 201);
  });

  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const rows = await c
      .get("db")
      .select()
      .from(deployments)
      .where(
        and(
          q.app ? eq(deployments.app, q.app) : undefined,
          q.cursor ? lt(deployments.id, Number(q.cursor)) : undefined,
        ),
      )
      .orderBy(desc(deployments.id))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    return c.json(
      {
        deployments: page.map(deploymentView),
        next_cursor: rows.length > q.limit ? String(page.at(-1)!.id) : null,
      },
      200,
    );
  });

  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    const db = c.get("db");
    return c.json(await detail(c.env, db, await mustGet(db, id)), 200);
  });

  app.openapi(rollback, async (c) => {
    const { id } = c.req.valid("param");
    const db = c.get("db");
    const row = await rollbackDeployment(c.env, db, c.get("config"), actorOf(c), id);
    return c.json(await detail(c.env, db, row), 201);
  });
}
