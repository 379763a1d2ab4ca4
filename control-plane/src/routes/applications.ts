import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { AppPlacementSchema } from "../applications/placement.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { requireRole } from "../auth/tokens.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import type { AppPlacement } from "../db/schema.ts";
import {
  applications,
  buildLogs,
  builds,
  deployments,
  replicationBatches,
  replications,
} from "../db/schema.ts";
import { ApiError, badRequest, notFound } from "../errors.ts";
import { isDeployed } from "../goal-state/core.ts";
import { globalStub } from "../goal-state/stubs.ts";
import { CommandText, errors, json, jsonBody, Region, Slug, security } from "./schemas.ts";

const HealthCheck = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("http"),
    path: z.string().regex(/^\/[\x21-\x7e]{0,255}$/, "must be an absolute URL path"),
    port: z.number().int().min(1).max(65535),
  }),
  z.strictObject({ type: z.literal("command"), command: CommandText() }),
]);

const RepoUrl = z
  .string()
  .max(2048)
  .regex(
    /^((https?|ssh|git|file):\/\/\S+|[\w.-]+@[\w.-]+:\S+)$/,
    "must be a git URL (https://, ssh://, git://, file:// or user@host:path)",
  );

const ArtifactPath = CommandText(1024).refine(
  (p) => !p.startsWith("/") && !p.split("/").includes(".."),
  {
    message: "must be a path inside the checkout (relative, no '..')",
  },
);

const CreateApplication = z
  .strictObject({
    name: Slug,
    repo_url: RepoUrl,
    build_command: CommandText(),
    artifact_path: ArtifactPath,
    run_command: CommandText(),
    health_check: HealthCheck.optional(),
    regions: z.array(Region).min(1).max(32).optional(),
    build_timeout_s: z
      .number()
      .int()
      .min(10)
      .max(4 * 3600)
      .optional(),
    placement: AppPlacementSchema.nullable().optional(),
  })
  .openapi("CreateApplication");

const UpdateApplication = z
  .strictObject({
    repo_url: RepoUrl,
    build_command: CommandText(),
    artifact_path: ArtifactPath,
    build_timeout_s: z
      .number()
      .int()
      .min(10)
      .max(4 * 3600)
      .nullable(),
    run_command: CommandText(),
    health_check: HealthCheck.nullable(),
    regions: z.array(Region).min(1).max(32),
    placement: AppPlacementSchema.nullable(),
  })
  .partial()
  .refine((b) => Object.keys(b).length > 0, "give at least one field to change")
  .openapi("UpdateApplication");

const Application = z
  .object({
    name: z.string(),
    repo_url: z.string(),
    build_command: z.string(),
    artifact_path: z.string(),
    run_command: z.string(),
    health_check: HealthCheck.nullable(),
    regions: z.array(z.string()),
    build_timeout_s: z.number().nullable(),
    placement: AppPlacementSchema.nullable(),
    created_at: z.string(),
  })
  .openapi("Application");

type Row = typeof applications.$inferSelect;
const view = (a: Row): z.infer<typeof Application> => ({
  name: a.name,
  repo_url: a.repoUrl,
  build_command: a.buildCommand,
  artifact_path: a.artifactPath,
  run_command: a.runCommand,
  health_check: (a.healthCheck as z.infer<typeof HealthCheck> | null) ?? null,
  regions: a.regions,
  build_timeout_s: a.buildTimeoutMs === null ? null : a.buildTimeoutMs / 1000,
  placement: a.placement ?? null,
  created_at: new Date(a.createdAt).toISOString(),
});

/** The regions, checked against the configured ones: a clear 400, or the list. */
function checkRegions(config: Config, regions: string[], placement?: AppPlacement | null): void {
  const unknown = regions.filter((r) => !config.regions.includes(r));
  if (unknown.length > 0) {
    throw badRequest(`unknown regions ${unknown.join(", ")}; known: ${config.regions.join(", ")}`);
  }
  if (new Set(regions).size !== regions.length) throw badRequest("regions must not repeat");
  const stray = Object.keys(placement?.regions ?? {}).filter((r) => !regions.includes(r));
  if (stray.length > 0) {
    throw new ApiError(
      400,
      "invalid_input",
      `placement.regions: ${stray.join(", ")} is not among the app's regions (${regions.join(", ")})`,
      { field: "placement.regions" },
    );
  }
}

const create = createRoute({
  method: "post",
  path: "/v1/applications",
  summary: "Register an application",
  tags: ["applications"],
  security,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(CreateApplication) },
  responses: { 201: json(Application, "registered"), ...errors(400, 401, 403, 409) },
});

const list = createRoute({
  method: "get",
  path: "/v1/applications",
  summary: "List applications",
  tags: ["applications"],
  security,
  middleware: [requireRole("any")] as const,
  responses: {
    200: json(z.object({ applications: z.array(Application) }), "all applications"),
    ...errors(401),
  },
});

const get = createRoute({
  method: "get",
  path: "/v1/applications/{name}",
  summary: "One application",
  tags: ["applications"],
  security,
  middleware: [requireRole("any")] as const,
  request: { params: z.object({ name: Slug.openapi({ param: { name: "name", in: "path" } }) }) },
  responses: { 200: json(Application, "the application"), ...errors(400, 401, 404) },
});

const NameParam = z.object({ name: Slug.openapi({ param: { name: "name", in: "path" } }) });

const update = createRoute({
  method: "patch",
  path: "/v1/applications/{name}",
  summary:
    "Change an application (build, run, health, placement, regions); goals set from then on carry it",
  tags: ["applications"],
  security,
  middleware: [requireRole("admin")] as const,
  request: { params: NameParam, body: jsonBody(UpdateApplication) },
  responses: { 200: json(Application, "changed"), ...errors(400, 401, 403, 404, 409) },
});

const remove = createRoute({
  method: "delete",
  path: "/v1/applications/{name}",
  summary: "Delete an application and its builds and deployments (refused while deployed)",
  tags: ["applications"],
  security,
  middleware: [requireRole("admin")] as const,
  request: { params: NameParam },
  responses: {
    200: json(
      z.object({ deleted: z.string(), builds: z.number(), deployments: z.number() }),
      "deleted",
    ),
    ...errors(400, 401, 403, 404, 409),
  },
});

const undeploy = createRoute({
  method: "post",
  path: "/v1/applications/{name}/undeploy",
  summary: "Stop the app everywhere: a new generation without it; every machine removes it",
  tags: ["applications"],
  security,
  middleware: [requireRole("deployer", "admin")] as const,
  request: { params: NameParam },
  responses: {
    200: json(
      z.object({ app: z.string(), generation: z.number(), regions: z.array(z.string()) }),
      "undeployed",
    ),
    ...errors(400, 401, 403, 404, 409),
  },
});

/** A deployment of the app that is rolling, or null. */
async function rolling(db: Db, app: string) {
  return (
    (await db.query.deployments.findFirst({
      where: and(eq(deployments.app, app), eq(deployments.status, "ROLLING")),
    })) ?? null
  );
}

export function registerApplications(app: App): void {
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const config = c.get("config");
    const regions = body.regions ?? config.regions;
    checkRegions(config, regions, body.placement);
    const db = c.get("db");
    const [inserted] = await db.batch([
      db
        .insert(applications)
        .values({
          name: body.name,
          repoUrl: body.repo_url,
          buildCommand: body.build_command,
          artifactPath: body.artifact_path,
          runCommand: body.run_command,
          healthCheck: body.health_check ?? null,
          regions,
          buildTimeoutMs: body.build_timeout_s === undefined ? null : body.build_timeout_s * 1000,
          placement: body.placement ?? null,
        })
        .onConflictDoNothing()
        .returning(),
      auditInsert(db, actorOf(c), {
        action: "application.create",
        target: `application:${body.name}`,
        details: { repo_url: body.repo_url, regions, placement: body.placement ?? null },
        onlyIfChanged: true,
      }),
    ]);
    const row = inserted[0];
    if (!row) {
      throw new ApiError(409, "already_exists", `application ${body.name} already exists`);
    }
    return c.json(view(row), 201);
  });

  app.openapi(list, async (c) => {
    const rows = await c.get("db").select().from(applications).orderBy(asc(applications.name));
    return c.json({ applications: rows.map(view) }, 200);
  });

  app.openapi(get, async (c) => {
    const { name } = c.req.valid("param");
    const row = await c
      .get("db")
      .query.applications.findFirst({ where: eq(applications.name, name) });
    if (!row) throw notFound("application", name);
    return c.json(view(row), 200);
  });

  app.openapi(update, async (c) => {
    const { name } = c.req.valid("param");
    const body = c.req.valid("json");
    const db = c.get("db");
    const row = await db.query.applications.findFirst({ where: eq(applications.name, name) });
    if (!row) throw notFound("application", name);
    const regions = body.regions ?? row.regions;
    const placement = body.placement === undefined ? row.placement : body.placement;
    checkRegions(c.get("config"), regions, placement);
    if (body.regions) {
      // A region the goal still runs the app in stays the app's until it is undeployed there.
      const running = isDeployed(await globalStub(c.env).snapshot(), name);
      const dropped = running.filter((r) => !regions.includes(r));
      if (dropped.length > 0) {
        throw new ApiError(
          409,
          "region_deployed",
          `${name} runs in ${dropped.join(", ")}; undeploy it (POST /v1/applications/${name}/undeploy) before removing ${dropped.length === 1 ? "that region" : "those regions"}`,
          { regions: dropped },
        );
      }
    }
    const set = {
      ...(body.repo_url !== undefined ? { repoUrl: body.repo_url } : {}),
      ...(body.build_command !== undefined ? { buildCommand: body.build_command } : {}),
      ...(body.artifact_path !== undefined ? { artifactPath: body.artifact_path } : {}),
      ...(body.build_timeout_s !== undefined
        ? { buildTimeoutMs: body.build_timeout_s === null ? null : body.build_timeout_s * 1000 }
        : {}),
      ...(body.run_command !== undefined ? { runCommand: body.run_command } : {}),
      ...(body.health_check !== undefined ? { healthCheck: body.health_check } : {}),
      ...(body.regions !== undefined ? { regions: body.regions } : {}),
      ...(body.placement !== undefined ? { placement: body.placement } : {}),
    };
    const [updated] = await db.batch([
      db.update(applications).set(set).where(eq(applications.name, name)).returning(),
      auditInsert(db, actorOf(c), {
        action: "application.update",
        target: `application:${name}`,
        details: { changed: Object.keys(body), ...body },
        onlyIfChanged: true,
      }),
    ]);
    return c.json(view(updated[0]!), 200);
  });

  app.openapi(undeploy, async (c) => {
    const { name } = c.req.valid("param");
    const db = c.get("db");
    const row = await db.query.applications.findFirst({ where: eq(applications.name, name) });
    if (!row) throw notFound("application", name);
    const busy = await rolling(db, name);
    if (busy) {
      throw new ApiError(
        409,
        "deployment_rolling",
        `deployment ${busy.id} of ${name} is rolling; abort it (POST /v1/deployments/${busy.id}/abort) before undeploying`,
        { deployment_id: busy.id },
      );
    }
    const result = await globalStub(c.env).undeploy(name);
    if (!result.ok) {
      throw new ApiError(409, "not_deployed", `${name} is not deployed in any region`);
    }
    await auditInsert(db, actorOf(c), {
      action: "application.undeploy",
      target: `application:${name}`,
      details: { generation: result.generation, regions: result.push },
    });
    return c.json({ app: name, generation: result.generation, regions: result.push }, 200);
  });

  app.openapi(remove, async (c) => {
    const { name } = c.req.valid("param");
    const db = c.get("db");
    const row = await db.query.applications.findFirst({ where: eq(applications.name, name) });
    if (!row) throw notFound("application", name);
    const running = isDeployed(await globalStub(c.env).snapshot(), name);
    if (running.length > 0) {
      throw new ApiError(
        409,
        "app_deployed",
        `${name} runs in ${running.join(", ")}; undeploy it first (POST /v1/applications/${name}/undeploy)`,
        { regions: running },
      );
    }
    const busy = await rolling(db, name);
    const building = await db.query.builds.findFirst({
      where: and(eq(builds.app, name), inArray(builds.status, ["QUEUED", "RUNNING"])),
    });
    if (busy || building) {
      throw new ApiError(
        409,
        "app_busy",
        busy
          ? `deployment ${busy.id} of ${name} is rolling`
          : `build ${building!.id} of ${name} is ${building!.status}; cancel it first`,
      );
    }
    const ofApp = sql`(SELECT id FROM ${builds} WHERE ${builds.app} = ${name})`;
    const [, , , removedBuilds, removedDeployments] = await db.batch([
      db.delete(replicationBatches).where(sql`${replicationBatches.buildId} IN ${ofApp}`),
      db.delete(replications).where(sql`${replications.buildId} IN ${ofApp}`),
      db.delete(buildLogs).where(sql`${buildLogs.buildId} IN ${ofApp}`),
      db.delete(builds).where(eq(builds.app, name)).returning({ id: builds.id }),
      db.delete(deployments).where(eq(deployments.app, name)).returning({ id: deployments.id }),
      db.delete(applications).where(eq(applications.name, name)),
      auditInsert(db, actorOf(c), {
        action: "application.delete",
        target: `application:${name}`,
        details: { repo_url: row.repoUrl },
      }),
    ]);
    return c.json(
      { deleted: name, builds: removedBuilds.length, deployments: removedDeployments.length },
      200,
    );
  });
}
