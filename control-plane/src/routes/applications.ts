import { createRoute, z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { requireRole } from "../auth/tokens.ts";
import { applications } from "../db/schema.ts";
import { ApiError, badRequest, notFound } from "../errors.ts";
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
  })
  .openapi("CreateApplication");

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
  created_at: new Date(a.createdAt).toISOString(),
});

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

export function registerApplications(app: App): void {
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const config = c.get("config");
    const regions = body.regions ?? config.regions;
    const unknown = regions.filter((r) => !config.regions.includes(r));
    if (unknown.length > 0) {
      throw badRequest(
        `unknown regions ${unknown.join(", ")}; known: ${config.regions.join(", ")}`,
      );
    }
    if (new Set(regions).size !== regions.length) throw badRequest("regions must not repeat");
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
        })
        .onConflictDoNothing()
        .returning(),
      auditInsert(db, actorOf(c), {
        action: "application.create",
        target: `application:${body.name}`,
        details: { repo_url: body.repo_url, regions },
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
}
