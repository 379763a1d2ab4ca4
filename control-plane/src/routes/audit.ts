import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { requireRole } from "../auth/tokens.ts";
import { auditLog } from "../db/schema.ts";
import { errors, json, security } from "./schemas.ts";

const AuditEntry = z
  .object({
    id: z.number(),
    ts: z.string(),
    actor: z.string(),
    role: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    details: z.unknown(),
    request_id: z.string().nullable(),
    ip: z.string().nullable(),
  })
  .openapi("AuditEntry");

const list = createRoute({
  method: "get",
  path: "/v1/audit",
  summary: "Who did what, newest first (filter by target, e.g. build:42)",
  tags: ["audit"],
  security,
  middleware: [requireRole("admin", "deployer")] as const,
  request: {
    query: z.strictObject({
      target: z
        .string()
        .regex(/^[a-z]+:[\w.-]{1,128}$/, "must look like build:42")
        .optional(),
      action: z
        .string()
        .regex(/^[a-z]+\.[a-z_]+$/, "must look like build.create")
        .optional(),
      limit: z.coerce.number().int().min(1).max(500).default(100),
      cursor: z
        .string()
        .regex(/^\d{1,15}$/, "must be a next_cursor this endpoint returned")
        .optional(),
    }),
  },
  responses: {
    200: json(
      z.object({ entries: z.array(AuditEntry), next_cursor: z.string().nullable() }),
      "a page",
    ),
    ...errors(400, 401, 403),
  },
});

export function registerAudit(app: App): void {
  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const rows = await c
      .get("db")
      .select()
      .from(auditLog)
      .where(
        and(
          q.target ? eq(auditLog.target, q.target) : undefined,
          q.action ? eq(auditLog.action, q.action) : undefined,
          q.cursor ? lt(auditLog.id, Number(q.cursor)) : undefined,
        ),
      )
      .orderBy(desc(auditLog.id))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    return c.json(
      {
        entries: page.map((e) => ({
          id: e.id,
          ts: new Date(e.ts).toISOString(),
          actor: e.actor,
          role: e.role,
          action: e.action,
          target: e.target,
          details: e.details,
          request_id: e.requestId,
          ip: e.ip,
        })),
        next_cursor: rows.length > q.limit ? String(page.at(-1)!.id) : null,
      },
      200,
    );
  });
}
