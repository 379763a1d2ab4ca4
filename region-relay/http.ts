/**
 * The relay's HTTP surface. Agents authenticate every request with their agent token
 * (`Authorization: Bearer`), checked by AgentAuth.
 *
 *   GET /healthz                     liveness and what the relay holds (no token)
 *   GET /metrics                     Prometheus text (no token)
 *   GET /v1/agent                    WebSocket: the agent's control channel (protocol/relay-messages.ts)
 *   GET /v1/chunks/:digest           a chunk's bytes, from the cache (read upstream once);
 *                                    `?fallback=1`: the asker is a mesh agent that can wait for
 *                                    a peer, refused (503 relay_busy) past the fallback slots
 *   GET /v1/builds/:id/manifest      a build's signed manifest, as the control plane serves it
 */
import { isDigest } from "../protocol/hash.ts";
import type { AgentAuth } from "./agent-auth.ts";
import type { AgentHub } from "./agent-hub.ts";
import { type ChunkCache, ChunkUnavailable } from "./chunk-cache.ts";
import { errorText, type Logger } from "./log.ts";
import { type ManifestCache, ManifestUnavailable } from "./manifest-cache.ts";
import type { Metrics } from "./metrics.ts";

export interface HttpDeps {
  relayId: string;
  region: string;
  auth: AgentAuth;
  hub: AgentHub;
  chunks: ChunkCache;
  manifests: ManifestCache;
  metrics: Metrics;
  logger: Logger;
  /** Agent connections held at once before new ones are refused (503). */
  maxAgents: number;
  /** Chunks served at once to `?fallback=1` asks (mesh agents that can wait for a peer). */
  fallbackSlots: number;
  /** Extra fields for /healthz (upstream connection, goal version). */
  health: () => Record<string, unknown>;
}

type Handler = (request: Request, info: { remoteAddr: Deno.Addr }) => Promise<Response>;

export function relayHandler(deps: HttpDeps): Handler {
  const fallback = { serving: 0 };
  return async (request, info) => {
    const url = new URL(request.url);
    const path = url.pathname;
    try {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return problem(405, "method_not_allowed", `${request.method} is not served here`);
      }
      if (path === "/healthz") {
        return Response.json({
          status: "ok",
          relay_id: deps.relayId,
          region: deps.region,
          agents: deps.metrics.get("relay_agents_connected"),
          ...deps.health(),
        });
      }
      if (path === "/metrics") {
        return new Response(deps.metrics.render({ relay_id: deps.relayId, region: deps.region }), {
          headers: { "Content-Type": "text/plain; version=0.0.4" },
        });
      }
      const refused = await authenticate(request, deps);
      if (refused) return refused;
      if (path === "/v1/agent") return upgrade(request, info, deps);
      const chunk = /^\/v1\/chunks\/([^/]+)$/.exec(path);
      if (chunk) {
        const head = request.method === "HEAD";
        if (url.searchParams.get("fallback") !== "1" || head)
          return await serveChunk(chunk[1]!, head, deps);
        return await serveFallback(chunk[1]!, fallback, deps);
      }
      const manifest = /^\/v1\/builds\/(\d{1,15})\/manifest$/.exec(path);
      if (manifest) return await serveManifest(Number(manifest[1]), deps);
      return problem(404, "not_found", `no route for ${path}`);
    } catch (err) {
      deps.logger.log("error", "request:failed", {
        method: request.method,
        path,
        error: errorText(err),
      });
      return problem(
        500,
        "internal",
        "the relay failed to answer; try another relay of the region",
      );
    }
  };
}

async function authenticate(request: Request, deps: HttpDeps): Promise<Response | null> {
  const header = request.headers.get("Authorization") ?? "";
  const token = /^Bearer (\S+)$/.exec(header)?.[1];
  if (!token) {
    deps.metrics.inc("relay_agents_refused_total");
    return problem(401, "unauthorized", "an agent token is required (Authorization: Bearer)");
  }
  const verdict = await deps.auth.verify(token);
  if (verdict === "valid") return null;
  deps.metrics.inc("relay_agents_refused_total");
  if (verdict === "unavailable") {
    return problem(
      503,
      "unavailable",
      "cannot check the token now (control plane unreachable); retry",
    );
  }
  return problem(401, "unauthorized", `not an agent token of ${deps.region}`);
}

function upgrade(request: Request, info: { remoteAddr: Deno.Addr }, deps: HttpDeps): Response {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return problem(426, "upgrade_required", "GET /v1/agent is a WebSocket");
  }
  if (deps.hub.size >= deps.maxAgents) {
    deps.metrics.inc("relay_agents_refused_total");
    const response = problem(
      503,
      "relay_full",
      `relay ${deps.relayId} holds ${deps.maxAgents} agents; connect to another relay of ${deps.region}`,
    );
    response.headers.set("Retry-After", "30");
    return response;
  }
  // Read before upgrading: afterwards the request counts as closed and remoteAddr throws.
  const addr = info.remoteAddr;
  const remote = addr.transport === "tcp" ? `${addr.hostname}:${addr.port}` : addr.transport;
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  deps.hub.accept(socket, remote);
  return response;
}

/**
 * A chunk for a mesh agent that could get it from a peer: served while fewer than
 * `fallbackSlots` such answers are streaming, else 503 relay_busy. Without this bound, a swarm
 * whose first pieces are slow to appear sends every agent to the relay at once, and each
 * waits behind thousands of others for bytes its peers will soon hold (bench/simulate showed
 * a whole relay's swarm finishing at 7 × T0 that way).
 */
async function serveFallback(
  digest: string,
  slots: { serving: number },
  deps: HttpDeps,
): Promise<Response> {
  if (slots.serving >= deps.fallbackSlots) {
    deps.metrics.inc("relay_chunks_busy_total");
    const response = problem(
      503,
      "relay_busy",
      `relay ${deps.relayId} is serving ${deps.fallbackSlots} chunks to agents with peers; ask your peers, then retry`,
    );
    response.headers.set("Retry-After", "1");
    return response;
  }
  slots.serving++;
  let released = false;
  const release = () => {
    if (!released) slots.serving--;
    released = true;
  };
  try {
    const response = await serveChunk(digest, false, deps);
    if (!response.body) {
      release();
      return response;
    }
    return new Response(untilDone(response.body, release), response);
  } catch (err) {
    release();
    throw err;
  }
}

/** `body`, calling `done` once when it has been read to the end, failed or been cancelled. */
function untilDone(body: ReadableStream<Uint8Array>, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) {
          done();
          controller.close();
        } else controller.enqueue(next.value);
      } catch (err) {
        done();
        controller.error(err);
      }
    },
    cancel(reason) {
      done();
      return reader.cancel(reason);
    },
  });
}

async function serveChunk(digest: string, head: boolean, deps: HttpDeps): Promise<Response> {
  if (!isDigest(digest))
    return problem(400, "invalid_digest", "expected 64 lowercase hex characters");
  let opened: { file: Deno.FsFile; size: number };
  try {
    opened = await deps.chunks.openChunk(digest);
  } catch (err) {
    if (err instanceof ChunkUnavailable) {
      return problem(err.status, err.status === 404 ? "not_found" : "upstream_failed", err.message);
    }
    throw err;
  }
  const headers = {
    "Content-Type": "application/octet-stream",
    "Content-Length": String(opened.size),
    ETag: `"${digest}"`,
    "Cache-Control": "public, max-age=31536000, immutable",
  };
  if (head) {
    opened.file.close();
    return new Response(null, { headers });
  }
  deps.metrics.inc("relay_chunks_served_total");
  deps.metrics.inc("relay_chunk_bytes_served_total", opened.size);
  return new Response(opened.file.readable, { headers });
}

async function serveManifest(buildId: number, deps: HttpDeps): Promise<Response> {
  try {
    const text = await deps.manifests.get(buildId);
    deps.metrics.inc("relay_manifests_served_total");
    return new Response(text, { headers: { "Content-Type": "application/json" } });
  } catch (err) {
    if (err instanceof ManifestUnavailable) {
      return problem(
        err.status,
        err.status === 502 ? "upstream_failed" : "no_manifest",
        err.message,
      );
    }
    throw err;
  }
}

function problem(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
