import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { TOKEN_CACHE_MS } from "../src/auth/token-cache.ts";
import type { Role } from "../src/db/schema.ts";
import { claimOne, manifestFor, queueBuild, registerApp, sampleApp, sha } from "./fixtures.ts";
import { call, db, mintToken, resetDb, snapshot } from "./helpers.ts";

const ROLES: Role[] = ["admin", "deployer", "builder", "relay", "agent"];
const tokens = {} as Record<Role, string>;

beforeAll(async () => {
  await resetDb();
  for (const role of ROLES) {
    tokens[role] = await mintToken(
      role,
      role === "relay" || role === "agent" ? { region: "us-east" } : {},
    );
  }
  await registerApp(tokens.admin, "authz");
});

type Allowed = Role[] | "any";
interface RouteCase {
  method: string;
  path: string | (() => Promise<string>);
  body?: () => Promise<unknown> | unknown;
  allowed: Allowed;
}

const LEASE = "0".repeat(32);
const routes: RouteCase[] = [
  {
    method: "POST",
    path: "/v1/applications",
    body: () => sampleApp(`app-${Math.random().toString(36).slice(2, 8)}`),
    allowed: ["admin"],
  },
  { method: "GET", path: "/v1/applications", allowed: "any" },
  { method: "GET", path: "/v1/applications/authz", allowed: "any" },
  {
    method: "POST",
    path: "/v1/builds",
    body: () => ({ app: "authz", commit_sha: sha() }),
    allowed: ["deployer", "admin"],
  },
  { method: "GET", path: "/v1/builds", allowed: "any" },
  {
    method: "GET",
    path: async () => `/v1/builds/${await queueBuild(tokens.deployer, "authz")}`,
    allowed: "any",
  },
  {
    method: "GET",
    path: async () => `/v1/builds/${await queueBuild(tokens.deployer, "authz")}/logs`,
    allowed: "any",
  },
  {
    method: "POST",
    path: async () => `/v1/builds/${await queueBuild(tokens.deployer, "authz")}/cancel`,
    allowed: ["deployer", "admin"],
  },
  {
    method: "POST",
    path: "/v1/worker/claim",
    body: () => ({ worker_id: "authz" }),
    allowed: ["builder"],
  },
  {
    method: "POST",
    path: "/v1/worker/builds/1/heartbeat",
    body: () => ({ lease_token: LEASE }),
    allowed: ["builder"],
  },
  {
    method: "POST",
    path: "/v1/worker/builds/1/logs",
    body: () => ({ lease_token: LEASE, seq: 0, lines: ["x"] }),
    allowed: ["builder"],
  },
  {
    method: "POST",
    path: "/v1/worker/builds/1/complete",
    body: () => ({
      lease_token: LEASE,
      manifest: manifestFor({ id: 1, app: "authz", commit: sha() }),
    }),
    allowed: ["builder"],
  },
  {
    method: "POST",
    path: "/v1/worker/builds/1/fail",
    body: () => ({ lease_token: LEASE, reason: "build_error", message: "x" }),
    allowed: ["builder"],
  },
  {
    method: "POST",
    path: "/v1/tokens",
    body: () => ({ name: "ci", role: "deployer" }),
    allowed: ["admin"],
  },
  { method: "GET", path: "/v1/tokens", allowed: ["admin"] },
  { method: "GET", path: "/v1/audit", allowed: ["admin", "deployer"] },
  {
    method: "POST",
    path: "/v1/chunks/missing",
    body: () => ({ digests: ["0".repeat(64)] }),
    allowed: ["builder"],
  },
  { method: "PUT", path: `/v1/chunks/${"0".repeat(64)}`, body: () => "x", allowed: ["builder"] },
  { method: "GET", path: "/v1/builds/1/manifest", allowed: "any" },
  {
    method: "POST",
    path: "/v1/builds/1/replication/retry",
    body: () => ({}),
    allowed: ["deployer", "admin"],
  },
  { method: "GET", path: "/v1/regions", allowed: "any" },
  {
    method: "GET",
    path: `/v1/regions/us-east/chunks/${"0".repeat(64)}`,
    allowed: ["relay", "agent", "admin"],
  },
  {
    method: "GET",
    path: "/v1/regions/us-east/goal?wait_s=0",
    allowed: ["relay", "agent", "admin"],
  },
  { method: "GET", path: "/v1/goal", allowed: "any" },
  { method: "GET", path: "/v1/machines", allowed: "any" },
  {
    method: "POST",
    path: "/v1/deployments",
    body: () => ({ app: "authz", build_id: 1 }),
    allowed: ["deployer", "admin"],
  },
  { method: "GET", path: "/v1/deployments", allowed: "any" },
  { method: "GET", path: "/v1/deployments/1", allowed: "any" },
  { method: "POST", path: "/v1/deployments/1/rollback", allowed: ["deployer", "admin"] },
  { method: "POST", path: "/v1/deployments/1/pause", allowed: ["deployer", "admin"] },
  { method: "POST", path: "/v1/deployments/1/resume", allowed: ["deployer", "admin"] },
  { method: "POST", path: "/v1/deployments/1/abort", allowed: ["deployer", "admin"] },
  { method: "POST", path: "/v1/tokens/aaaaaaaaaaaaaaaa/revoke", allowed: ["admin"] },
];

const isAllowed = (allowed: Allowed, role: Role) => allowed === "any" || allowed.includes(role);

describe("authorization matrix: every route × every role", () => {
  for (const route of routes) {
    const label = `${route.method} ${typeof route.path === "string" ? route.path : route.path.toString().match(/`(.*)`/)?.[1]}`;
    it(`${label}: 401 without a token, 401 with a forged one, 403 for the wrong roles, and changes nothing when refused`, async () => {
      const path = typeof route.path === "string" ? route.path : await route.path();
      const body = route.body ? await route.body() : undefined;
      const before = await snapshot();
      const none = await call(route.method, path, { body });
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe("unauthorized");
      const forged = await call(route.method, path, {
        body,
        token: `fst_${"a".repeat(16)}_${"b".repeat(43)}`,
      });
      expect(forged.status).toBe(401);
      for (const role of ROLES) {
        if (isAllowed(route.allowed, role)) continue;
        const r = await call(route.method, path, { body, token: tokens[role] });
        expect(r.status, `${role} on ${label}`).toBe(403);
        expect(r.body.error.code).toBe("forbidden");
      }
      expect(await snapshot()).toEqual(before);
      for (const role of ROLES) {
        if (!isAllowed(route.allowed, role)) continue;
        const r = await call(route.method, path, {
          body: route.body ? await route.body() : undefined,
          token: tokens[role],
        });
        expect([401, 403], `${role} on ${label}: ${JSON.stringify(r.body)}`).not.toContain(
          r.status,
        );
      }
    });
  }

  it("GET /healthz and /metrics need no token", async () => {
    expect((await call("GET", "/healthz")).status).toBe(200);
    expect((await call("GET", "/metrics")).status).toBe(200);
  });
});

describe("tokens", () => {
  it("mints a token of any role through the API, shown once and stored only as a hash", async () => {
    const r = await call("POST", "/v1/tokens", {
      token: tokens.admin,
      body: { name: "ci bot", role: "builder" },
    });
    expect(r.status).toBe(201);
    const secret = r.body.token as string;
    expect(secret).toMatch(/^fst_[a-z2-7]{16}_[\w-]{43}$/);
    // The 43-character secret part, which may itself hold "_" (base64url).
    const secretPart = secret.slice("fst_".length + 16 + 1);
    const rows = JSON.stringify(await db.all(sql`SELECT * FROM tokens`));
    expect(rows).not.toContain(secretPart);
    const audit = JSON.stringify(await db.all(sql`SELECT * FROM audit_log`));
    expect(audit).not.toContain(secretPart);
    const list = await call("GET", "/v1/tokens", { token: tokens.admin });
    expect(JSON.stringify(list.body)).not.toContain(secret);
    // The new token works as a builder: a claim is answered (a build or none), not refused.
    const claim = await call("POST", "/v1/worker/claim", {
      token: secret,
      body: { worker_id: "ci-bot" },
    });
    expect([200, 204]).toContain(claim.status);
  });

  it("a revoked token is refused at once", async () => {
    const r = await call("POST", "/v1/tokens", {
      token: tokens.admin,
      body: { name: "temp", role: "deployer" },
    });
    expect((await call("GET", "/v1/builds", { token: r.body.token })).status).toBe(200);
    const revoked = await call("POST", `/v1/tokens/${r.body.id}/revoke`, { token: tokens.admin });
    expect(revoked.body.revoked_at).toBeTruthy();
    const after = await call("GET", "/v1/builds", { token: r.body.token });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/revoked/);
  });

  it("a token revoked elsewhere (another isolate, or straight in the database) is refused within TOKEN_CACHE_MS", async () => {
    const r = await call("POST", "/v1/tokens", {
      token: tokens.admin,
      body: { name: "cached", role: "builder" },
    });
    const claim = () =>
      call("POST", "/v1/worker/claim", { token: r.body.token, body: { worker_id: "cache-test" } });
    expect([200, 204]).toContain((await claim()).status);
    const revokedAt = Date.now();
    await db.run(sql`UPDATE tokens SET revoked_at = ${revokedAt} WHERE id = ${r.body.id}`);
    // This isolate read the row less than TOKEN_CACHE_MS ago and trusts it until then.
    for (;;) {
      const after = await claim();
      if (after.status === 401) {
        expect(after.body.error.message).toMatch(/revoked/);
        break;
      }
      expect([200, 204]).toContain(after.status);
      expect(Date.now() - revokedAt).toBeLessThan(TOKEN_CACHE_MS + 1_000);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(Date.now() - revokedAt).toBeLessThan(TOKEN_CACHE_MS + 1_000);
  });

  it("an expired token is refused", async () => {
    const r = await call("POST", "/v1/tokens", {
      token: tokens.admin,
      body: { name: "short", role: "deployer", ttl_s: 60 },
    });
    await db.run(sql`UPDATE tokens SET expires_at = 1 WHERE id = ${r.body.id}`);
    const after = await call("GET", "/v1/builds", { token: r.body.token });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/expired/);
  });

  it.each([
    [{ name: "x", role: "root" }, "unknown role"],
    [{ name: "x", role: "agent" }, "agent without region"],
    [{ name: "x", role: "deployer", region: "us-east" }, "deployer with region"],
    [{ name: "x", role: "relay", region: "mars-1" }, "unknown region"],
    [{ name: "x", role: "deployer", ttl_s: 1 }, "ttl too short"],
  ])("refuses %j (%s) and changes nothing", async (body, _why) => {
    const before = await snapshot();
    const r = await call("POST", "/v1/tokens", { token: tokens.admin, body });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("invalid_input");
    expect(await snapshot()).toEqual(before);
  });
});

describe("audit log", () => {
  it("records who did each mutating call", async () => {
    await db.run(
      sql`UPDATE builds SET status = 'FAILED', failure_reason = 'canceled' WHERE status = 'QUEUED'`,
    );
    const id = await queueBuild(tokens.deployer, "authz");
    const c = await claimOne(tokens.builder, "audit-worker");
    expect(c?.id).toBe(id);
    await call("POST", `/v1/worker/builds/${c!.id}/complete`, {
      token: tokens.builder,
      body: { lease_token: c!.lease, manifest: manifestFor(c!) },
    });
    const r = await call("GET", `/v1/audit?target=build:${id}`, { token: tokens.admin });
    const actions = r.body.entries.map(
      (e: { action: string; role: string }) => `${e.action}/${e.role}`,
    );
    expect(actions).toEqual([
      "build.complete/builder",
      "build.claim/builder",
      "build.create/deployer",
    ]);
  });
});
