import { createRoute, z } from "@hono/zod-openapi";
import { DIGEST_PATTERN } from "../../../protocol/hash.ts";
import type { App } from "../app-env.ts";
import { bucketFor, chunkKey } from "../artifacts/buckets.ts";
import { requireRole } from "../auth/tokens.ts";
import { bucketBinding } from "../config.ts";
import { ApiError } from "../errors.ts";
import { stateCounts } from "../goal-state/relay-status.ts";
import { regionStub } from "../goal-state/stubs.ts";
import { errors, json, Region, security } from "./schemas.ts";

/** Failed machines listed per region (all are counted): the relays' problem sample. */
const FAILED_LISTED = 50;

const RegionInfo = z
  .object({
    name: z.string(),
    primary: z.boolean(),
    bucket_binding: z.string(),
    machines: z
      .object({
        reported: z.number().describe("(machine, app) pairs the region's relays report"),
        unreachable: z.number(),
        states: z.record(z.string(), z.number()).describe("reachable pairs by state"),
      })
      .openapi("RegionMachines"),
    failed: z
      .array(
        z.object({
          machine_id: z.string(),
          app: z.string(),
          build_id: z.number().nullable(),
          detail: z.string().nullable(),
          restarts: z.number().optional(),
        }),
      )
      .describe(`failed (machine, app) pairs with their reason, the first ${FAILED_LISTED}`),
    status_bytes: z
      .number()
      .describe("size of the region's aggregated status as JSON: what rollouts and views read"),
  })
  .openapi("Region");

const list = createRoute({
  method: "get",
  path: "/v1/regions",
  summary: "Regions, their buckets (the first is primary) and their machines' states",
  tags: ["regions"],
  security,
  middleware: [requireRole("any")] as const,
  responses: { 200: json(z.object({ regions: z.array(RegionInfo) }), "regions"), ...errors(401) },
});

const chunk = createRoute({
  method: "get",
  path: "/v1/regions/{region}/chunks/{digest}",
  summary: "A chunk's bytes from that region's bucket (relays seed the mesh with these)",
  tags: ["regions"],
  security,
  middleware: [requireRole("relay", "agent", "admin")] as const,
  request: {
    params: z.object({
      region: Region.openapi({ param: { name: "region", in: "path" } }),
      digest: z
        .string()
        .regex(DIGEST_PATTERN, "must be a sha256 hex digest")
        .openapi({ param: { name: "digest", in: "path" } }),
    }),
  },
  responses: {
    200: {
      description: "the chunk's bytes",
      content: { "application/octet-stream": { schema: z.any() } },
    },
    ...errors(400, 401, 403, 404),
  },
});

export function registerRegions(app: App): void {
  app.openapi(list, async (c) => {
    const regions = await Promise.all(
      c.get("config").regions.map(async (name, i) => {
        const summary = await regionStub(c.env, name).summary(name);
        const failed = summary.problems.filter((p) => p.reachable && p.problem === "failed");
        return {
          name,
          primary: i === 0,
          bucket_binding: bucketBinding(name),
          machines: stateCounts(summary),
          failed: failed.slice(0, FAILED_LISTED).map((m) => ({
            machine_id: m.machine_id,
            app: m.app,
            build_id: m.build_id,
            detail: m.detail ?? null,
            ...(m.restarts === undefined ? {} : { restarts: m.restarts }),
          })),
          status_bytes: JSON.stringify(summary).length,
        };
      }),
    );
    return c.json({ regions }, 200);
  });

  app.openapi(chunk, async (c) => {
    const { region, digest } = c.req.valid("param");
    if (!c.get("config").regions.includes(region)) {
      throw new ApiError(404, "not_found", `region ${region} does not exist`);
    }
    const principal = c.get("principal");
    if (principal.region !== null && principal.region !== region) {
      throw new ApiError(
        403,
        "forbidden",
        `a ${principal.role} token of ${principal.region} may not read ${region}`,
      );
    }
    const object = await bucketFor(c.env, region).get(chunkKey(digest));
    if (!object) {
      throw new ApiError(
        404,
        "not_found",
        `chunk ${digest} is not in ${region} (yet); replication may be under way`,
      );
    }
    return new Response(object.body, {
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(object.size),
        ETag: object.httpEtag,
        "Cache-Control": "public, max-age=31536000, immutable",
      },
    }) as never;
  });
}
