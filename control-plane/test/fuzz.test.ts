import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { claimOne, queueBuild, registerApp, sampleApp, sha } from "./fixtures.ts";
import { call, mintToken, resetDb, snapshot } from "./helpers.ts";

let tokens: Record<"admin" | "deployer" | "builder", string>;
let buildId: number;
let lease: string;

beforeAll(async () => {
  await resetDb();
  tokens = {
    admin: await mintToken("admin"),
    deployer: await mintToken("deployer"),
    builder: await mintToken("builder"),
  };
  await registerApp(tokens.admin, "fuzzed");
  buildId = await queueBuild(tokens.deployer, "fuzzed");
  lease = (await claimOne(tokens.builder))!.lease;
});

/** Values that no field of ours accepts in place of the one they replace. */
const hostile = fc.oneof(
  fc.constant(null),
  fc.constant("../../../../etc/passwd"),
  fc.constant("x'; DROP TABLE builds; --"),
  fc.constant("<script>alert(1)</script>"),
  fc.constant("\u0000\u202e"),
  fc.string({ minLength: 5000, maxLength: 6000 }).map((s) => `A${s}`),
  fc.array(fc.anything(), { maxLength: 3 }).map((a) => ({ nested: a })),
  fc.double({ noNaN: false }),
  fc.constant(-1),
  fc.constant(Number.MAX_SAFE_INTEGER + 2),
  fc.boolean(),
);

interface Target {
  method: string;
  path: string;
  token: keyof typeof tokens;
  body: () => Record<string, unknown>;
}

const targets = (): Target[] => [
  {
    method: "POST",
    path: "/v1/applications",
    token: "admin",
    body: () => ({ ...sampleApp("fresh-app") }),
  },
  {
    method: "POST",
    path: "/v1/builds",
    token: "deployer",
    body: () => ({ app: "fuzzed", commit_sha: sha() }),
  },
  {
    method: "POST",
    path: "/v1/deployments",
    token: "deployer",
    body: () => ({ app: "fuzzed", build_id: buildId }),
  },
  {
    method: "POST",
    path: "/v1/tokens",
    token: "admin",
    body: () => ({ name: "fuzz", role: "deployer" }),
  },
  {
    method: "POST",
    path: "/v1/worker/claim",
    token: "builder",
    body: () => ({ worker_id: "fuzz" }),
  },
  {
    method: "POST",
    path: `/v1/worker/builds/${buildId}/heartbeat`,
    token: "builder",
    body: () => ({ lease_token: lease }),
  },
  {
    method: "POST",
    path: `/v1/worker/builds/${buildId}/logs`,
    token: "builder",
    body: () => ({ lease_token: lease, seq: 0, lines: ["x"] }),
  },
  {
    method: "POST",
    path: `/v1/worker/builds/${buildId}/fail`,
    token: "builder",
    body: () => ({ lease_token: lease, reason: "build_error", message: "m" }),
  },
  {
    method: "POST",
    path: `/v1/worker/builds/${buildId}/complete`,
    token: "builder",
    body: () => ({ lease_token: lease, manifest: {} }),
  },
  {
    method: "POST",
    path: "/v1/chunks/missing",
    token: "builder",
    body: () => ({ digests: ["0".repeat(64)] }),
  },
];

function expectRefusal(r: { status: number; body: any }, label: string): void {
  expect(r.status, label).toBeGreaterThanOrEqual(400);
  expect(r.status, `${label}: ${JSON.stringify(r.body).slice(0, 300)}`).toBeLessThan(500);
  expect(typeof r.body?.error?.code, label).toBe("string");
  expect(typeof r.body?.error?.message, label).toBe("string");
}

describe("fuzzing every mutating route", () => {
  it("refuses a hostile value in any field, an unknown field, or a non-object body: never 5xx, always the error format, nothing changed", async () => {
    const before = await snapshot();
    let requests = 0;
    for (const t of targets()) {
      const fields = Object.keys(t.body());
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc
              .tuple(fc.constantFrom(...fields), hostile)
              .map(([f, v]) => ({ kind: "field", f, v })),
            fc
              .tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.anything())
              .map(([f, v]) => ({ kind: "extra", f, v: v ?? null })),
            fc.anything().map((v) => ({ kind: "whole", f: "", v })),
          ),
          async (m) => {
            // A failure message is free text from the build: any string is a fair message.
            fc.pre(!(m.kind === "field" && m.f === "message" && typeof m.v === "string"));
            let body: unknown;
            if (m.kind === "whole") body = m.v === undefined ? "" : m.v;
            else if (m.kind === "extra")
              body = fields.includes(m.f)
                ? { ...t.body(), [`${m.f}_x`]: m.v }
                : { ...t.body(), [m.f]: m.v };
            else body = { ...t.body(), [m.f]: m.v };
            if (
              m.kind === "whole" &&
              typeof body === "object" &&
              body !== null &&
              !Array.isArray(body)
            ) {
              body = { ...body, __unknown_field__: 1 };
            }
            requests++;
            const r = await call(t.method, t.path, {
              token: tokens[t.token],
              body: typeof body === "string" ? body : (JSON.stringify(body) ?? "null"),
            });
            expectRefusal(r, `${t.method} ${t.path} ${JSON.stringify(m).slice(0, 200)}`);
            expect(r.status, `${t.method} ${t.path} was rate limited, not fuzzed`).not.toBe(429);
          },
        ),
        { numRuns: 25, seed: 42 },
      );
    }
    expect(await snapshot()).toEqual(before);
    expect(requests).toBeGreaterThanOrEqual(targets().length * 25);
  }, 120_000);

  it("refuses hostile path parameters and query strings the same way", async () => {
    // Tokens to take turns with, so that the per-token rate limit (120 changes in 10 s) never
    // answers in place of the route: a 429 here would hide what the route does with the input.
    const pool = {
      deployer: await Promise.all(Array.from({ length: 8 }, () => mintToken("deployer"))),
      admin: await Promise.all(Array.from({ length: 4 }, () => mintToken("admin"))),
    };
    let run = 0;
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(
            "..%2F..%2Fetc%2Fpasswd",
            "1%27%20OR%201%3D1",
            "-1",
            "1.5",
            "99999999999999999999",
            "%00",
            "abc",
          ),
          fc.string({ maxLength: 30 }).map(encodeURIComponent),
        ),
        async (p) => {
          run++;
          const deployer = pool.deployer[run % pool.deployer.length]!;
          const admin = pool.admin[run % pool.admin.length]!;
          for (const path of [
            `/v1/builds/${p}`,
            `/v1/builds/${p}/logs`,
            `/v1/deployments/${p}`,
            `/v1/builds?status=${p}&limit=${p}`,
            `/v1/builds?cursor=${p}`,
          ]) {
            const r = await call("GET", path, { token: deployer });
            if (r.status === 200) continue; // e.g. an empty page for a filter that parses
            expectRefusal(r, path);
          }
          for (const [path, token] of [
            [`/v1/builds/${p}/cancel`, deployer],
            [`/v1/builds/${p}/replication/retry`, deployer],
            [`/v1/deployments/${p}/rollback`, deployer],
            [`/v1/deployments/${p}/pause`, deployer],
            [`/v1/deployments/${p}/resume`, deployer],
            [`/v1/deployments/${p}/abort`, deployer],
            [`/v1/tokens/${p}/revoke`, admin],
            [`/v1/worker/builds/${p}/heartbeat`, tokens.builder],
          ] as const) {
            const c = await call("POST", path, { token, body: { lease_token: lease } });
            expectRefusal(c, `POST ${path}`);
            expect(c.status, `POST ${path} was rate limited, not fuzzed`).not.toBe(429);
          }
        },
      ),
      { numRuns: 40, seed: 7 },
    );
    expect(await snapshot()).toEqual(before);
  }, 120_000);
});

/** wrangler.toml's API_RATE: 120 mutating calls per token per 10 s. */
const API_RATE_LIMIT = 120;
const RATE_PERIOD_MS = 10_000;

describe("rate limits", () => {
  it("answers 429 with Retry-After past the per-token limit on mutating calls, and the refused call changes nothing", async () => {
    const deployer = await mintToken("deployer", { name: "eager" });
    // The limiter counts in windows aligned to the wall clock (miniflare's and Cloudflare's
    // simple limiter alike): start just after a boundary so the calls below, the refused one
    // included, fall in one window however slow the machine is (CI once saw 200 calls
    // straddle a boundary, two windows each under the limit, and no 429).
    await new Promise((resolve) =>
      setTimeout(resolve, RATE_PERIOD_MS - (Date.now() % RATE_PERIOD_MS) + 50),
    );
    let limited: { status: number; body: any; headers: Headers } | undefined;
    for (let i = 0; i < 3 * API_RATE_LIMIT && !limited; i++) {
      const r = await call("POST", "/v1/builds", {
        token: deployer,
        body: { app: "no-such-app", commit_sha: sha() },
      });
      if (r.status === 429) limited = r;
      else expect(r.status).toBe(404);
    }
    expect(limited, `no 429 within ${3 * API_RATE_LIMIT} calls`).toBeDefined();
    expect(limited!.headers.get("Retry-After")).toBe("10");
    expect(limited!.body.error.code).toBe("rate_limited");
    const before = await snapshot();
    const refused = await call("POST", "/v1/builds", {
      token: deployer,
      body: { app: "fuzzed", commit_sha: sha() },
    });
    expect(refused.status).toBe(429);
    expect(await snapshot()).toEqual(before);
    // Reads are not limited.
    expect((await call("GET", "/v1/builds", { token: deployer })).status).toBe(200);
  });
});
