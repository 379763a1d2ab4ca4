import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { actorOf, auditInsert } from "../audit.ts";
import { forgetToken } from "../auth/token-cache.ts";
import { newToken } from "../auth/token-format.ts";
import { requireRole } from "../auth/tokens.ts";
import { nowMs, ROLES, tokens } from "../db/schema.ts";
import { badRequest, notFound } from "../errors.ts";
import { errors, json, jsonBody, Region, security } from "./schemas.ts";

const CreateToken = z
  .strictObject({
    name: z.string().regex(/^[\w .@:-]{1,64}$/, "must be 1-64 letters, digits, space or . _ @ : -"),
    role: z.enum(ROLES),
    region: Region.optional(),
    ttl_s: z
      .number()
      .int()
      .min(60)
      .max(5 * 365 * 86400)
      .optional(),
  })
  .openapi("CreateToken");

const TokenInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    region: z.string().nullable(),
    created_at: z.string(),
    created_by: z.string().nullable(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .openapi("TokenInfo");

type Row = typeof tokens.$inferSelect;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const view = (t: Row) => ({
  id: t.id,
  name: t.name,
  role: t.role,
  region: t.region,
  created_at: iso(t.createdAt)!,
  created_by: t.createdBy,
  expires_at: iso(t.expiresAt),
  revoked_at: iso(t.revokedAt),
});

const create = createRoute({
  method: "post",
  path: "/v1/tokens",
  summary: "Mint a token of any role (the secret is shown once)",
  tags: ["tokens"],
  security,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(CreateToken) },
  responses: {
    201: json(
      TokenInfo.extend({ token: z.string() }),
      "minted; keep `token`, it is not shown again",
    ),
    ...errors(400, 401, 403),
  },
});

const list = createRoute({
  method: "get",
  path: "/v1/tokens",
  summary: "Tokens (never their secrets)",
  tags: ["tokens"],
  security,
  middleware: [requireRole("admin")] as const,
  responses: {
    200: json(z.object({ tokens: z.array(TokenInfo) }), "all tokens"),
    ...errors(401, 403),
  },
});

const revoke = createRoute({
  method: "post",
  path: "/v1/tokens/{id}/revoke",
  summary: "Revoke a token at once",
  tags: ["tokens"],
  security,
  middleware: [requireRole("admin")] as const,
  request: {
    params: z.object({
      id: z
        .string()
        .regex(/^[a-z2-7]{16}$/, "must be a token id")
        .openapi({ param: { name: "id", in: "path" } }),
    }),
  },
  responses: { 200: json(TokenInfo, "revoked"), ...errors(400, 401, 403, 404) },
});

export function registerTokens(app: App): void {
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const regional = body.role === "relay" || body.role === "agent";
    if (regional && !body.region) throw badRequest(`a ${body.role} token must name its region`);
    if (!regional && body.region) throw badRequest(`a ${body.role} token is not bound to a region`);
    if (body.region && !c.get("config").regions.includes(body.region)) {
      throw badRequest(`unknown region ${body.region}`);
    }
    const t = await newToken(c.get("config").tokenPepper);
    const actor = actorOf(c);
    const db = c.get("db");
    const [rows] = await db.batch([
      db
        .insert(tokens)
        .values({
          id: t.id,
          name: body.name,
          role: body.role,
          region: body.region ?? null,
          secretHash: t.secretHash,
          createdBy: actor.actor,
          expiresAt: body.ttl_s === undefined ? null : sql`${nowMs} + ${body.ttl_s * 1000}`,
        })
        .returning(),
      auditInsert(db, actor, {
        action: "token.create",
        target: `token:${t.id}`,
        details: { name: body.name, role: body.role, region: body.region ?? null },
      }),
    ]);
    return c.json({ ...view(rows[0]!), token: t.token }, 201);
  });

  app.openapi(list, async (c) => {
    const rows = await c.get("db").select().from(tokens).orderBy(asc(tokens.createdAt));
    return c.json({ tokens: rows.map(view) }, 200);
  });

  app.openapi(revoke, async (c) => {
    const { id } = c.req.valid("param");
    const db = c.get("db");
    await db.batch([
      db
        .update(tokens)
        .set({ revokedAt: nowMs })
        .where(and(eq(tokens.id, id), isNull(tokens.revokedAt))),
      auditInsert(db, actorOf(c), {
        action: "token.revoke",
        target: `token:${id}`,
        onlyIfChanged: true,
      }),
    ]);
    // Refused at once by this isolate; by the others within TOKEN_CACHE_MS.
    forgetToken(id);
    const row = await db.query.tokens.findFirst({ where: eq(tokens.id, id) });
    if (!row) throw notFound("token", id);
    return c.json(view(row), 200);
  });
}
