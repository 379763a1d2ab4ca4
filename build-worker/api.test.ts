import assert from "node:assert/strict";
import {
  ApiError,
  controlPlaneClient,
  isLeaseRefusal,
  isTransient,
  TransportError,
} from "./api.ts";
import { silentLogger } from "./log.ts";

type Handler = (req: Request) => Response | Promise<Response>;

function client(handler: Handler, extra: { timeoutMs?: number } = {}) {
  const requests: Request[] = [];
  const api = controlPlaneClient({
    url: "http://cp.test/",
    token: "fst_x_y",
    logger: silentLogger,
    retry: { attempts: 3, baseMs: 1, maxMs: 2 },
    ...extra,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      requests.push(req.clone());
      return await handler(req);
    }) as typeof fetch,
  });
  return { api, requests };
}

const error = (status: number, code: string) =>
  Response.json({ error: { code, message: `${code} happened` } }, { status });

Deno.test("the client retries a server error with the same request, then succeeds", async () => {
  let n = 0;
  const { api, requests } = client(() =>
    ++n < 3 ? error(503, "unavailable") : Response.json({ appended: true }),
  );
  await api.appendLogs(7, { leaseToken: "t", seq: 4, lines: ["a"] });
  assert.equal(requests.length, 3);
  const bodies = await Promise.all(requests.map((r) => r.json()));
  for (const body of bodies) assert.deepEqual(body, { lease_token: "t", seq: 4, lines: ["a"] });
  assert.equal(requests[0]!.url, "http://cp.test/v1/worker/builds/7/logs");
  assert.equal(requests[0]!.headers.get("authorization"), "Bearer fst_x_y");
});

Deno.test("the client does not retry a refusal and keeps its code", async () => {
  const { api, requests } = client(() => error(409, "lease_lost"));
  const err = await api.heartbeat(1, "t").catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 409);
  assert.equal(err.code, "lease_lost");
  assert.ok(isLeaseRefusal(err));
  assert.ok(!isTransient(err));
  assert.equal(requests.length, 1);
});

Deno.test("the client turns a network failure into a TransportError after its retries", async () => {
  const { api, requests } = client(() => {
    throw new TypeError("connection refused");
  });
  await assert.rejects(api.missingChunks(["a".repeat(64)]), TransportError);
  assert.equal(requests.length, 3);
});

Deno.test("the client times a call out", async () => {
  const { api } = client(
    (req) =>
      new Promise((_, reject) =>
        req.signal.addEventListener("abort", () => reject(req.signal.reason)),
      ),
    { timeoutMs: 20 },
  );
  await assert.rejects(api.getBuild(1), /timed out after 20 ms/);
});

Deno.test("the client never retries a claim (a lost answer could hold a build twice)", async () => {
  const { api, requests } = client(() => error(502, "bad_gateway"));
  await assert.rejects(api.claim("w", 0), ApiError);
  assert.equal(requests.length, 1);
});

Deno.test("putChunk() sends the bytes with their length and reports 201 as stored", async () => {
  const { api, requests } = client((req) =>
    Response.json(
      { stored: true },
      { status: req.headers.get("content-length") === "3" ? 201 : 400 },
    ),
  );
  assert.deepEqual(await api.putChunk("d".repeat(64), new Uint8Array([1, 2, 3])), { stored: true });
  const req = requests[0]!;
  assert.equal(req.method, "PUT");
  assert.equal(req.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(new Uint8Array(await req.arrayBuffer()), new Uint8Array([1, 2, 3]));
});

Deno.test("claim() returns null on 204 and the parsed claim on 200", async () => {
  const claimed = {
    build: {
      id: 3,
      app: "demo",
      commit_sha: "a".repeat(40),
      status: "RUNNING",
      attempt: 1,
      timeout_ms: 60_000,
      worker_id: "w",
    },
    app: { name: "demo", repo_url: "file:///r", build_command: "make", artifact_path: "out/x" },
    lease_token: "0".repeat(32),
    lease_expires_at: "2026-01-01T00:00:00.000Z",
    heartbeat_interval_ms: 15_000,
  };
  let n = 0;
  const { api } = client(() =>
    n++ === 0 ? new Response(null, { status: 204 }) : Response.json(claimed),
  );
  assert.equal(await api.claim("w", 0), null);
  assert.deepEqual(await api.claim("w", 0), claimed);
});
