// The HTTP face of the server: routes, body limits, and the one place where errors become
// HTTP statuses. Built from its parts (registry, logger) so tests can call it directly with
// a Request, without a socket.

import { decodeCursorBody, decodePipelineBody } from "./decode.ts";
import { HranaHttpError } from "./errors.ts";
import { cursorEntries, executeBatch, type PipelineOutcome, runPipeline } from "./execute.ts";
import type { Logger } from "./log.ts";
import type { HranaVersion, WirePipelineRespBody } from "./protocol.ts";
import type { StreamRegistry } from "./streams.ts";
import { stringifyJson } from "./values.ts";

export interface ServerInfo {
  readonly name: string;
  readonly version: string;
  readonly sqliteVersion: string;
}

export interface HandlerDeps {
  readonly registry: StreamRegistry;
  readonly log: Logger;
  readonly busyTimeoutMs: number;
  readonly info: ServerInfo;
}

// Large enough for any migration or blob the control plane writes; a body past it is
// refused before it is buffered.
const MAX_BODY_BYTES = 32 * 1024 * 1024;

const CORS_HEADERS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "authorization, content-type, x-turso-encryption-key",
};

function jsonResponse(body: unknown, status = 200): Response {
  // Exactly "application/json": the Hrana client compares the header verbatim before it
  // reads an error body, so a charset parameter would hide our error messages.
  return new Response(stringifyJson(body), {
    status,
    headers: { "content-type": "application/json", ...CORS_HEADERS },
  });
}

export function createHandler(deps: HandlerDeps): (request: Request) => Promise<Response> {
  const routes: Record<string, Partial<Record<string, (request: Request) => Promise<Response>>>> = {
    "/health": {
      GET: () => Promise.resolve(jsonResponse({ status: "ok", streams: deps.registry.size })),
    },
    "/version": {
      GET: () =>
        Promise.resolve(jsonResponse({ ...deps.info, hrana: ["2", "3"], encodings: ["json"] })),
    },
    "/v2": { GET: () => Promise.resolve(jsonResponse({ hrana: "2", encoding: "json" })) },
    "/v3": { GET: () => Promise.resolve(jsonResponse({ hrana: "3", encoding: "json" })) },
    "/v2/pipeline": { POST: (request) => pipeline(deps, request, 2) },
    "/v3/pipeline": { POST: (request) => pipeline(deps, request, 3) },
    "/v3/cursor": { POST: (request) => cursor(deps, request) },
  };

  return async (request) => {
    const path = new URL(request.url).pathname.replace(/\/+$/, "") || "/";
    try {
      if (request.method === "OPTIONS") {
        return new Response(null, { status: 204, headers: CORS_HEADERS });
      }
      if (path === "/v3-protobuf" || path.startsWith("/v3-protobuf/")) {
        throw new HranaHttpError(
          "PROTOBUF_NOT_SUPPORTED",
          "This local libSQL server speaks Hrana over HTTP with JSON only; use /v3/pipeline or /v2/pipeline",
        );
      }
      const route = routes[path];
      if (route === undefined) {
        throw new HranaHttpError(
          "NOT_FOUND",
          `No route ${path}; Hrana endpoints are /v2/pipeline, /v3/pipeline and /v3/cursor`,
        );
      }
      const handle = route[request.method];
      if (handle === undefined) {
        throw new HranaHttpError(
          "METHOD_NOT_ALLOWED",
          `${path} takes ${Object.keys(route).join(", ")}, not ${request.method}`,
        );
      }
      return await handle(request);
    } catch (error) {
      return errorResponse(deps.log, request, path, error);
    }
  };
}

function errorResponse(log: Logger, request: Request, path: string, error: unknown): Response {
  if (error instanceof HranaHttpError) {
    log("warn", "request:rejected", {
      method: request.method,
      path,
      status: error.status,
      code: error.code,
      message: error.message,
    });
    return jsonResponse({ message: error.message, code: error.code }, error.status);
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log("error", "request:failed", { method: request.method, path, error: detail });
  const message = error instanceof Error ? error.message : String(error);
  return jsonResponse({ message: `Internal error: ${message}`, code: "INTERNAL" }, 500);
}

async function readBody(request: Request): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  const tooLarge = () =>
    new HranaHttpError("BODY_TOO_LARGE", `Request bodies are limited to ${MAX_BODY_BYTES} bytes`);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

async function readJson(request: Request): Promise<unknown> {
  const bytes = await readBody(request);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new HranaHttpError("BAD_JSON", `The request body is not valid UTF-8 JSON: ${reason}`, {
      cause: error,
    });
  }
}

/**
 * Decodes the body; if it is malformed but names a live stream, that stream is closed: the
 * client treats a 4xx as the end of the stream, and a transaction left open there would
 * hold the write lock until the idle timeout.
 */
function decodeOrDiscard<T>(deps: HandlerDeps, json: unknown, decode: (json: unknown) => T): T {
  try {
    return decode(json);
  } catch (error) {
    const baton = (json as { baton?: unknown } | null)?.baton;
    if (typeof baton === "string") deps.registry.discard(baton);
    throw error;
  }
}

async function pipeline(
  deps: HandlerDeps,
  request: Request,
  version: HranaVersion,
): Promise<Response> {
  const json = await readJson(request);
  const body = decodeOrDiscard(deps, json, (j) => decodePipelineBody(j, version));
  const stream = deps.registry.acquire(body.baton);
  let outcome: PipelineOutcome;
  try {
    outcome = await runPipeline(stream, body.requests, {
      version,
      busyTimeoutMs: deps.busyTimeoutMs,
    });
  } catch (error) {
    // Not a SQL error (those become results): the stream's state is unknown, so end it.
    deps.registry.close(stream, false);
    throw error;
  }
  let baton: string | null = null;
  if (outcome.closed) deps.registry.close(stream);
  else baton = deps.registry.release(stream);
  const response: WirePipelineRespBody = { baton, base_url: null, results: outcome.results };
  return jsonResponse(response);
}

async function cursor(deps: HandlerDeps, request: Request): Promise<Response> {
  const json = await readJson(request);
  const body = decodeOrDiscard(deps, json, decodeCursorBody);
  const stream = deps.registry.acquire(body.baton);
  let lines: string[];
  try {
    const result = await executeBatch(stream, body.batch, {
      version: 3,
      busyTimeoutMs: deps.busyTimeoutMs,
    });
    lines = cursorEntries(result).map((entry) => stringifyJson(entry));
  } catch (error) {
    deps.registry.close(stream, false);
    throw error;
  }
  const head = stringifyJson({ baton: deps.registry.release(stream), base_url: null });
  return new Response(`${[head, ...lines].join("\n")}\n`, {
    headers: { "content-type": "text/plain", ...CORS_HEADERS },
  });
}
