import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { App } from "../app-env.ts";

const Health = z
  .object({
    status: z.enum(["ok", "degraded"]),
    database: z.object({
      ok: z.boolean(),
      latency_ms: z.number().optional(),
      error: z.string().optional(),
    }),
    regions: z.array(z.string()),
  })
  .openapi("Health");

const route = createRoute({
  method: "get",
  path: "/healthz",
  summary: "Liveness, with the database's reachability",
  responses: {
    200: { description: "healthy", content: { "application/json": { schema: Health } } },
    503: {
      description: "database unreachable",
      content: { "application/json": { schema: Health } },
    },
  },
});

export function registerHealth(app: App): void {
  app.openapi(route, async (c) => {
    const started = performance.now();
    const regions = c.get("config").regions;
    try {
      await c.get("db").run(sql`SELECT 1`);
      const latency_ms = Math.round(performance.now() - started);
      return c.json({ status: "ok" as const, database: { ok: true, latency_ms }, regions }, 200);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      return c.json({ status: "degraded" as const, database: { ok: false, error }, regions }, 503);
    }
  });
}
