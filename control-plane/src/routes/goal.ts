import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app-env.ts";
import { requireRole } from "../auth/tokens.ts";
import { ApiError } from "../errors.ts";
import { globalStub, regionStub } from "../goal-state/stubs.ts";
import { errors, json, Region, security } from "./schemas.ts";

const RegionParam = z.object({ region: Region.openapi({ param: { name: "region", in: "path" } }) });

const globalGoal = createRoute({
  method: "get",
  path: "/v1/goal",
  summary: "The global goal: per app, generation, deployment and per-region target",
  tags: ["goal"],
  security,
  middleware: [requireRole("any")] as const,
  responses: {
    200: json(
      z.object({ generation: z.number(), apps: z.record(z.string(), z.unknown()) }),
      "the goal",
    ),
    ...errors(401),
  },
});

const regionGoal = createRoute({
  method: "get",
  path: "/v1/regions/{region}/goal",
  summary: "A region's signed goals; long-polls until version > since (docs/goal-state.md)",
  tags: ["goal"],
  security,
  middleware: [requireRole("relay", "agent", "admin")] as const,
  request: {
    params: RegionParam,
    query: z.strictObject({
      since: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
      wait_s: z.coerce.number().int().min(0).max(30).default(25),
    }),
  },
  responses: {
    200: json(
      z.object({
        region: z.string(),
        version: z.number(),
        goals: z.array(z.object({ document: z.string(), signature: z.string() })),
      }),
      "signed goals",
    ),
    ...errors(400, 401, 403, 404),
  },
});

function checkRegion(c: Parameters<Parameters<App["openapi"]>[1]>[0], region: string): void {
  if (!c.get("config").regions.includes(region))
    throw new ApiError(404, "not_found", `region ${region} does not exist`);
  const p = c.get("principal");
  if (p.region !== null && p.region !== region) {
    throw new ApiError(403, "forbidden", `a ${p.role} token of ${p.region} may not read ${region}`);
  }
}

export function registerGoal(app: App): void {
  app.openapi(globalGoal, async (c) => c.json(await globalStub(c.env).snapshot(), 200));

  app.openapi(regionGoal, async (c) => {
    const { region } = c.req.valid("param");
    checkRegion(c, region);
    const q = c.req.valid("query");
    const r = await regionStub(c.env, region).goals(region, q.since, q.wait_s * 1000);
    return c.json({ region, ...r }, 200);
  });

  // The relay subscription is a WebSocket, outside OpenAPI's reach; documented in docs/goal-state.md.
  app.get("/v1/regions/:region/subscribe", requireRole("relay"), async (c) => {
    const region = c.req.param("region");
    checkRegion(c, region);
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError(
        426,
        "upgrade_required",
        "subscribe is a WebSocket: send Upgrade: websocket",
      );
    }
    const headers = new Headers(c.req.raw.headers);
    headers.set("X-Fleetship-Region", region);
    headers.set("X-Fleetship-Relay-Token-Id", c.get("principal").tokenId);
    return regionStub(c.env, region).fetch(new Request(c.req.raw.url, { headers }));
  });
}
