/**
 * The control plane's worker API (DESIGN section 11), as the build worker calls it. Every call
 * has a timeout; the idempotent ones are retried on transient failures (no answer, 5xx, 429).
 */
import { z } from "zod";
import type { Manifest } from "../protocol/index.ts";
import { errorText, type Logger } from "./log.ts";
import { retry } from "./retry.ts";

/** The control plane answered with an error (`{"error":{code,message,details}}`). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = undefined,
  ) {
    super(message);
  }
}

/** No answer: the network failed or the call timed out. */
export class TransportError extends Error {
  override readonly name = "TransportError";
}

/** Worth calling again: no answer, a server error, or rate limiting. */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  return err instanceof ApiError && (err.status >= 500 || err.status === 429);
}

/** The refusals that mean "this attempt is no longer yours: stop at once, send nothing". */
export function isLeaseRefusal(err: unknown): err is ApiError {
  return err instanceof ApiError && err.status === 409;
}

const BuildView = z.object({
  id: z.number().int().positive(),
  app: z.string(),
  commit_sha: z.string(),
  status: z.string(),
  attempt: z.number().int(),
  timeout_ms: z.number(),
  worker_id: z.string().nullable(),
});
export type BuildView = z.infer<typeof BuildView>;

const Claimed = z.object({
  build: BuildView,
  app: z.object({
    name: z.string(),
    repo_url: z.string().min(1),
    build_command: z.string().min(1),
    artifact_path: z.string().min(1),
  }),
  lease_token: z.string(),
  lease_expires_at: z.string(),
  heartbeat_interval_ms: z.number().positive(),
});
export type Claimed = z.infer<typeof Claimed>;

export type FailReason = "build_error" | "timeout" | "invalid_artifact" | "infrastructure";

export interface ControlPlane {
  /** The oldest queued build with its lease, or null when none came within `waitS`. */
  claim(workerId: string, waitS: number, signal?: AbortSignal): Promise<Claimed | null>;
  heartbeat(id: number, leaseToken: string, signal?: AbortSignal): Promise<void>;
  appendLogs(
    id: number,
    batch: { leaseToken: string; seq: number; lines: readonly string[] },
    signal?: AbortSignal,
  ): Promise<void>;
  complete(
    id: number,
    leaseToken: string,
    manifest: Manifest,
    signal?: AbortSignal,
  ): Promise<BuildView>;
  fail(
    id: number,
    failure: { leaseToken: string; reason: FailReason; message: string },
    signal?: AbortSignal,
  ): Promise<void>;
  getBuild(id: number, signal?: AbortSignal): Promise<BuildView>;
  /** Which of `digests` (at most 4096) the primary bucket lacks. */
  missingChunks(digests: readonly string[], signal?: AbortSignal): Promise<string[]>;
  /** Uploads one chunk; `stored` is false when the bucket already had it. */
  putChunk(digest: string, bytes: Uint8Array, signal?: AbortSignal): Promise<{ stored: boolean }>;
}

export interface ClientOptions {
  url: string;
  token: string;
  logger: Logger;
  fetch?: typeof fetch;
  /** Per-call timeout of short calls. Default 30 s. */
  timeoutMs?: number;
  /** Per-call timeout of chunk uploads and completion. Default 120 s. */
  longTimeoutMs?: number;
  /** Retry delays (tests shorten them). Default 500 ms doubling to 10 s, 6 calls. */
  retry?: { attempts?: number; baseMs?: number; maxMs?: number };
}

interface Call {
  method: "GET" | "POST" | "PUT";
  path: string;
  body?: unknown;
  bytes?: Uint8Array;
  timeoutMs: number;
  /** Calls in all (1: no retry). */
  attempts: number;
  signal: AbortSignal | undefined;
}

export function controlPlaneClient(opts: ClientOptions): ControlPlane {
  const base = opts.url.replace(/\/+$/, "");
  const doFetch = opts.fetch ?? fetch;
  const short = opts.timeoutMs ?? 30_000;
  const long = opts.longTimeoutMs ?? 120_000;

  async function once(call: Call): Promise<Response> {
    const timeout = AbortSignal.timeout(call.timeoutMs);
    const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
    const headers: Record<string, string> = { Authorization: `Bearer ${opts.token}` };
    let body: BodyInit | null = null;
    if (call.bytes) {
      headers["Content-Type"] = "application/octet-stream";
      headers["Content-Length"] = String(call.bytes.byteLength);
      body = call.bytes as Uint8Array<ArrayBuffer>;
    } else if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    let res: Response;
    try {
      res = await doFetch(`${base}${call.path}`, { method: call.method, headers, body, signal });
    } catch (err) {
      call.signal?.throwIfAborted();
      const what = timeout.aborted ? `timed out after ${call.timeoutMs} ms` : errorText(err);
      throw new TransportError(`${call.method} ${call.path}: ${what}`, { cause: err });
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => "");
    let error: { code?: unknown; message?: unknown; details?: unknown } = {};
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
    } catch {
      // Not our JSON error shape (a proxy's page, say): keep the status and the text.
    }
    throw new ApiError(
      res.status,
      typeof error.code === "string" ? error.code : `http_${res.status}`,
      `${call.method} ${call.path}: ${res.status} ${typeof error.message === "string" ? error.message : text.slice(0, 200)}`,
      error.details,
    );
  }

  const request = (call: Call): Promise<Response> =>
    retry(() => once(call), {
      ...opts.retry,
      attempts: call.attempts,
      retryable: isTransient,
      ...(call.signal ? { signal: call.signal } : {}),
      onRetry: ({ attempt, delayMs, error }) =>
        opts.logger.log("warn", "api:retry", {
          what: `${call.method} ${call.path}`,
          attempt,
          delay_ms: delayMs,
          error: errorText(error),
        }),
    });
  const attempts = opts.retry?.attempts ?? 6;

  return {
    async claim(workerId, waitS, signal) {
      // Not retried: a retry after a lost answer could hold two builds; the caller backs off.
      const res = await request({
        method: "POST",
        path: "/v1/worker/claim",
        body: { worker_id: workerId, wait_s: waitS },
        timeoutMs: waitS * 1000 + short,
        attempts: 1,
        signal,
      });
      if (res.status === 204) return null;
      return Claimed.parse(await res.json());
    },
    async heartbeat(id, leaseToken, signal) {
      await request({
        method: "POST",
        path: `/v1/worker/builds/${id}/heartbeat`,
        body: { lease_token: leaseToken },
        timeoutMs: short,
        attempts: 1,
        signal,
      }).then((r) => r.body?.cancel());
    },
    async appendLogs(id, batch, signal) {
      await request({
        method: "POST",
        path: `/v1/worker/builds/${id}/logs`,
        body: { lease_token: batch.leaseToken, seq: batch.seq, lines: batch.lines },
        timeoutMs: short,
        attempts,
        signal,
      }).then((r) => r.body?.cancel());
    },
    async complete(id, leaseToken, manifest, signal) {
      const res = await request({
        method: "POST",
        path: `/v1/worker/builds/${id}/complete`,
        body: { lease_token: leaseToken, manifest },
        timeoutMs: long,
        attempts,
        signal,
      });
      return BuildView.parse(await res.json());
    },
    async fail(id, failure, signal) {
      await request({
        method: "POST",
        path: `/v1/worker/builds/${id}/fail`,
        body: { lease_token: failure.leaseToken, reason: failure.reason, message: failure.message },
        timeoutMs: short,
        attempts,
        signal,
      }).then((r) => r.body?.cancel());
    },
    async getBuild(id, signal) {
      const res = await request({
        method: "GET",
        path: `/v1/builds/${id}`,
        timeoutMs: short,
        attempts,
        signal,
      });
      return BuildView.parse(await res.json());
    },
    async missingChunks(digests, signal) {
      const res = await request({
        method: "POST",
        path: "/v1/chunks/missing",
        body: { digests },
        timeoutMs: short,
        attempts,
        signal,
      });
      return z.object({ missing: z.array(z.string()) }).parse(await res.json()).missing;
    },
    async putChunk(digest, bytes, signal) {
      const res = await request({
        method: "PUT",
        path: `/v1/chunks/${digest}`,
        bytes,
        timeoutMs: long,
        attempts,
        signal,
      });
      await res.body?.cancel();
      return { stored: res.status === 201 };
    },
  };
}
