import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { newToken, sameDigest } from "../auth/token-format.ts";
import { requireRole } from "../auth/tokens.ts";
import { tokens } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { regionStub } from "../goal-state/stubs.ts";
import { errors, json, jsonBody, Region, Slug, security } from "./schemas.ts";

const MachineId = z.string().regex(/^[\w.:-]{1,128}$/, "must be 1-128 of letters, digits, . _ : -");

const enroll = createRoute({
  method: "post",
  path: "/v1/agents/enroll",
  summary: "Trade the enrollment secret for an agent token bound to one region",
  tags: ["agents"],
  security,
  request: { body: jsonBody(z.strictObject({ region: Region, machine_id: MachineId })) },
  responses: {
    201: json(
      z.object({ token: z.string(), region: z.string(), machine_id: z.string() }),
      "enrolled",
    ),
    ...errors(400, 401),
  },
});

const machines = createRoute({
  method: "get",
  path: "/v1/machines",
  summary: "Machines their relays report, and what they run",
  tags: ["agents"],
  security,
  middleware: [requireRole("any")] as const,
  request: { query: z.strictObject({ region: Region.optional(), app: Slug.optional() }) },
  responses: {
    200: json(
      z.object({ machines: z.array(z.unknown()), relays: z.array(z.unknown()) }),
      "machines",
    ),
    ...errors(400, 401),
  },
});

export function registerAgents(app: App): void {
  app.openapi(enroll, async (c) => {
    const secret = c.env.ENROLLMENT_SECRET;
    const given = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "")?.[1];
    // Compare digests, not strings, so the comparison takes the same time wherever they differ.
    const digest = async (s: string) =>
      Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s))),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
    if (!secret || !given || !sameDigest(await digest(secret), await digest(given))) {
      throw new ApiError(
        401,
        "unauthorized",
        "enrollment needs Authorization: Bearer <ENROLLMENT_SECRET>",
      );
    }
    const body = c.req.valid("json");
    if (!c.get("config").regions.includes(body.region)) {
      throw new ApiError(400, "invalid_input", `unknown region ${body.region}`);
    }
    const t = await newToken(c.get("config").tokenPepper);
    const db = c.get("db");
    const actor = { ...actorOf(c), actor: `enrollment (${body.machine_id})`, role: "enrollment" };
    await db.batch([
      db.insert(tokens).values({
        id: t.id,
        name: `agent ${body.machine_id}`,
        role: "agent",
        region: body.region,
        secretHash: t.secretHash,
        createdBy: actor.actor,
      }),
      auditInsert(db, actor, { action: "agent.enroll", target: `token:${t.id}`, details: body }),
    ]);
    return c.json({ token: t.token, region: body.region, machine_id: body.machine_id }, 201);
  });

  app.openapi(machines, async (c) => {
    const q = c.req.valid("query");
    const regions = q.region ? [q.region] : c.get("config").regions;
    const all = await Promise.all(
      regions.map(async (r) => ({ region: r, s: await regionStub(c.env, r).summary(r) })),
    );
    return c.json(
      {
        machines: all.flatMap(({ region, s }) =>
          s.machines.filter((m) => !q.app || m.app === q.app).map((m) => ({ region, ...m })),
        ),
        relays: all.flatMap(({ region, s }) => s.relays.map((r) => ({ region, ...r }))),
      },
      200,
    );
  });
}
