/**
 * The control plane as the relay calls it (docs/goal-state.md). Every call has a timeout; none
 * retries by itself: the callers (goal feed, chunk cache) own their retry policy.
 */
import { z } from "zod";
import { isDigest } from "../protocol/hash.ts";
import type { SignedGoal } from "../protocol/relay-messages.ts";

/** The control plane answered with an error status. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** No answer: the network failed or the call timed out. */
export class UpstreamUnreachable extends Error {
  override readonly name = "UpstreamUnreachable";
}

const GoalsResponse = z.object({
  region: z.string(),
  version: z.int().min(0),
  goals: z.array(z.object({ document: z.string(), signature: z.string() })),
});
export type RegionGoals = { version: number; goals: SignedGoal[] };

export interface Upstream {
  /** The region's signed goals; long-polls up to `waitS` for a version newer than `since`. */
  regionGoals(since: number, waitS: number, signal?: AbortSignal): Promise<RegionGoals>;
  /** `GET /v1/builds/:id/manifest`'s body, verbatim. */
  manifest(buildId: number, signal?: AbortSignal): Promise<string>;
  /** A 200 response whose body is the chunk's bytes (from the region's bucket). */
  chunk(digest: string, signal?: AbortSignal): Promise<Response>;
  /** True when `token` may read this region's goal (an agent token of the region); throws when unsure. */
  checkAgentToken(token: string, signal?: AbortSignal): Promise<boolean>;
  /** The base64 public key from `/v1/signing-key`. */
  signingKey(signal?: AbortSignal): Promise<string>;
  /** The goal subscription WebSocket's URL and headers. */
  subscription(): { url: string; headers: Record<string, string> };
}

export interface UpstreamOptions {
  url: string;
  token: string;
  region: string;
  /** Per call (long-polls get their wait on top). Default 15 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export function httpUpstream(options: UpstreamOptions): Upstream {
  const base = options.url.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? 15_000;
  const doFetch = options.fetch ?? fetch;
  const region = encodeURIComponent(options.region);
  const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

  async function call(
    path: string,
    init: { token?: string | null; signal?: AbortSignal | undefined; extraMs?: number },
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(timeoutMs + (init.extraMs ?? 0));
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await doFetch(`${base}${path}`, {
        headers: init.token === null ? {} : auth(init.token ?? options.token),
        signal,
      });
    } catch (cause) {
      throw new UpstreamUnreachable(`GET ${path}: no answer from the control plane`, { cause });
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    let code = "http_error";
    let message = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new UpstreamError(response.status, code, `GET ${path}: ${response.status} ${message}`);
  }

  return {
    async regionGoals(since, waitS, signal) {
      const path = `/v1/regions/${region}/goal?since=${since}&wait_s=${waitS}`;
      const response = await call(path, { signal, extraMs: waitS * 1000 });
      const body = GoalsResponse.parse(await response.json());
      return { version: body.version, goals: body.goals };
    },
    async manifest(buildId, signal) {
      if (!Number.isSafeInteger(buildId) || buildId < 1)
        throw new RangeError(`bad build id ${buildId}`);
      return await (await call(`/v1/builds/${buildId}/manifest`, { signal })).text();
    },
    async chunk(digest, signal) {
      if (!isDigest(digest)) throw new TypeError(`not a digest: ${digest}`);
      return await call(`/v1/regions/${region}/chunks/${digest}`, { signal });
    },
    async checkAgentToken(token, signal) {
      try {
        const response = await call(`/v1/regions/${region}/goal?wait_s=0`, { token, signal });
        await response.body?.cancel();
        return true;
      } catch (err) {
        if (err instanceof UpstreamError && (err.status === 401 || err.status === 403))
          return false;
        throw err;
      }
    },
    async signingKey(signal) {
      const body = (await (await call("/v1/signing-key", { token: null, signal })).json()) as {
        public_key?: unknown;
      };
      if (typeof body.public_key !== "string") throw new Error("/v1/signing-key: no public_key");
      return body.public_key;
    },
    subscription() {
      const wsBase = base.replace(/^http/, "ws");
      return { url: `${wsBase}/v1/regions/${region}/subscribe`, headers: auth(options.token) };
    },
  };
}
