import { eq } from "drizzle-orm";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { type Role, tokens } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { cachedToken, rememberToken } from "./token-cache.ts";
import { hashSecret, parseToken, sameDigest } from "./token-format.ts";

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
  region: string | null;
}

/** The dashboard keeps the operator's token in this HttpOnly cookie. */
export const SESSION_COOKIE = "fleetship_token";

const unauthorized = (message: string) => new ApiError(401, "unauthorized", message);

/**
 * The principal a token stands for; 401 when it is malformed, unknown, revoked or expired. The
 * token's row comes from the isolate's short cache when it can (token-cache.ts).
 */
export async function authenticate(c: Context<AppEnv>, token: string): Promise<Principal> {
  const parsed = parseToken(token);
  if (!parsed) throw unauthorized("malformed bearer token");
  let row = cachedToken(parsed.id);
  if (!row) {
    row = await c.get("db").query.tokens.findFirst({ where: eq(tokens.id, parsed.id) });
    if (row) rememberToken(row);
  }
  const hash = await hashSecret(parsed.secret, c.get("config").tokenPepper);
  if (!row || !sameDigest(row.secretHash, hash)) throw unauthorized("invalid token");
  if (row.revokedAt !== null) throw unauthorized("token revoked");
  if (row.expiresAt !== null && row.expiresAt <= Date.now()) throw unauthorized("token expired");
  return { tokenId: row.id, name: row.name, role: row.role, region: row.region };
}

export function mayAct(principal: Principal, roles: readonly (Role | "any")[]): boolean {
  return roles.includes("any") || roles.includes(principal.role);
}

function forbidden(principal: Principal, roles: readonly (Role | "any")[]): ApiError {
  return new ApiError(
    403,
    "forbidden",
    `role ${principal.role} may not do this; needs ${roles.join(" or ")}`,
  );
}

/**
 * Requires a valid bearer token whose role is one of `roles` ("any" accepts every role).
 * 401 without a usable token, 403 with the wrong role; nothing is read past that.
 */
export function requireRole(...roles: (Role | "any")[]) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const header = c.req.header("Authorization");
    if (!header) throw unauthorized("missing Authorization: Bearer <token>");
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized("malformed bearer token");
    const principal = await authenticate(c, m[1]!);
    if (!mayAct(principal, roles)) throw forbidden(principal, roles);
    await limitRate(c, principal);
    c.set("principal", principal);
    await next();
  });
}

/** Seconds a caller over its rate must wait: the limiter's window (wrangler.toml). */
const RATE_WINDOW_S = 10;

/** Mutating calls are rate limited per token; reads are not. 429 with Retry-After when over. */
async function limitRate(c: Context<AppEnv>, principal: Principal): Promise<void> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return;
  const limiter = principal.role === "builder" ? c.env.WORKER_RATE : c.env.API_RATE;
  if (!limiter) return;
  const { success } = await limiter.limit({ key: principal.tokenId });
  if (!success) {
    throw new ApiError(
      429,
      "rate_limited",
      `too many changes from token ${principal.name}; retry after ${RATE_WINDOW_S} s`,
      undefined,
      { headers: { "Retry-After": String(RATE_WINDOW_S) } },
    );
  }
}

/** The dashboard's variant: the token comes from the session cookie; without one, to the login page. */
export function requireSession(...roles: (Role | "any")[]) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE);
    if (!token) return c.redirect(`/ui/login?next=${encodeURIComponent(c.req.path)}`, 303);
    let principal: Principal;
    try {
      principal = await authenticate(c, token);
    } catch {
      return c.redirect(`/ui/login?next=${encodeURIComponent(c.req.path)}&expired=1`, 303);
    }
    if (!mayAct(principal, roles)) throw forbidden(principal, roles);
    await limitRate(c, principal);
    c.set("principal", principal);
    await next();
  });
}
