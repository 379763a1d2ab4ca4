import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { newToken, sameDigest } from "../auth/token-format.ts";
import { requireRole } from "../auth/tokens.ts";
import { tokens } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { MACHINE_STATES } from "../goal-state/relay-status.ts";
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

/** Machines listed per page by default, and at most. */
const PAGE_DEFAULT = 200;
const PAGE_MAX = 1000;

const Cursor = z.object({ r: z.int().min(0), after: z.tuple([z.string(), z.string()]).nullable() });

function encodeCursor(c: z.infer<typeof Cursor>): string {
  return btoa(JSON.stringify(c)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function decodeCursor(text: string): z.infer<typeof Cursor> {
  try {
    const json = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Cursor.parse(JSON.parse(json));
  } catch {
    throw new ApiError(400, "invalid_input", "cursor: not a cursor this API returned", {
      field: "cursor",
    });
  }
}

const machines = createRoute({
  method: "get",
  path: "/v1/machines",
  summary:
    "Machines their relays report and what they run, a page at a time (relays answer for their own machines)",
  tags: ["agents"],
  security,
  middleware: [requireRole("any")] as const,
  request: {
    query: z.strictObject({
      region: Region.optional(),
      app: Slug.optional(),
      state: z.enum(MACHINE_STATES).optional(),
      cursor: z.string().max(2048).optional(),
      limit: z.coerce.number().int().min(1).max(PAGE_MAX).optional(),
    }),
  },
  responses: {
    200: json(
      z.object({
        machines: z.array(z.unknown()),
        relays: z.array(z.unknown()),
        next_cursor: z
          .string()
          .nullable()
          .describe("pass as `cursor` for the next page; null at the end"),
        partial: z
          .array(z.object({ region: z.string(), relay_id: z.string() }))
          .describe(
            "relays that did not answer in time: their machines are missing from this page",
          ),
      }),
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
    const limit = q.limit ?? PAGE_DEFAULT;
    let cursor = q.cursor ? decodeCursor(q.cursor) : { r: 0, after: null };
    const out: Record<string, unknown>[] = [];
    const partial: { region: string; relay_id: string }[] = [];
    let next: string | null = null;
    // Region by region from the cursor's, each page asked of the region's relays.
    while (cursor.r < regions.length) {
      const region = regions[cursor.r]!;
      const page = await regionStub(c.env, region).machines(region, {
        app: q.app ?? null,
        state: q.state ?? null,
        after: cursor.after,
        limit: limit - out.length,
      });
      for (const m of page.machines) out.push({ region, ...m });
      for (const relay_id of page.missing) partial.push({ region, relay_id });
      const last = page.machines.at(-1);
      if (page.more && last) {
        next = encodeCursor({ r: cursor.r, after: [last.machine_id, last.app] });
        break;
      }
      cursor = { r: cursor.r + 1, after: null };
      if (out.length >= limit) {
        if (cursor.r < regions.length) next = encodeCursor(cursor);
        break;
      }
    }
    const summaries = await Promise.all(
      regions.map(async (r) => ({ region: r, s: await regionStub(c.env, r).summary(r) })),
    );
    return c.json(
      {
        machines: out,
        relays: summaries.flatMap(({ region, s }) => s.relays.map((r) => ({ region, ...r }))),
        next_cursor: next,
        partial,
      },
      200,
    );
  });
}
