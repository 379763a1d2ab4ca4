// The full local API for table 1, as `npm start` runs it (dev/start.ts) but on free ports, a
// fresh temp database and its own wrangler state: dev/libsql, migrations, minted tokens, and
// the control plane under `wrangler dev`.

import { mintToken } from "../../dev/tokens.ts";
import { DEFAULT_CHUNKER_PARAMS, MANIFEST_VERSION } from "../../protocol/index.ts";
import { generateSigningKeys } from "../../protocol/signing.ts";
import type { QueueWorker } from "./drive.ts";
import { REPO_ROOT, startLibsql } from "./libsql.ts";
import { freePort, type Processes, sleep } from "./processes.ts";
import { randomHex } from "./stats.ts";

export interface Stack {
  readonly apiUrl: string;
  readonly libsqlUrl: string;
  readonly tokens: { readonly admin: string; readonly builder: string };
  /** Processes whose CPU use the tables report: the libSQL server and wrangler's tree. */
  readonly pids: { readonly libsql: number; readonly wrangler: number };
}

const HEALTHY_WITHIN_MS = 120_000;

export async function startStack(procs: Processes, dir: string): Promise<Stack> {
  const libsqlUrl = await startLibsql(procs, `${dir}/api.db`);
  const pepper = randomHex(24);
  const envFile = `${dir}/.dev.vars`;
  const { privateKey } = await generateSigningKeys();
  await Deno.writeTextFile(
    envFile,
    `TOKEN_PEPPER=${pepper}\nLIBSQL_AUTH_TOKEN=\nSIGNING_KEY=${privateKey}\n`,
    { mode: 0o600 },
  );
  const mint = async (role: "admin" | "builder") =>
    (await mintToken(libsqlUrl, pepper, { role, name: `bench ${role}` })).token;
  const tokens = { admin: await mint("admin"), builder: await mint("builder") };

  const port = freePort();
  const wrangler = await procs.start("wrangler", `${REPO_ROOT}node_modules/.bin/node`, {
    args: [
      `${REPO_ROOT}node_modules/wrangler/bin/wrangler.js`,
      "dev",
      "--cwd",
      REPO_ROOT,
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      // Its own inspector port: the default (9229) may belong to someone else's wrangler.
      "--inspector-port",
      String(freePort()),
      "--persist-to",
      `${dir}/wrangler`,
      "--env-file",
      envFile,
      "--var",
      `LIBSQL_URL:${libsqlUrl}`,
      // The Worker's per-request info log is relayed to wrangler over the inspector: measured
      // at ~5 ms of latency per request (a 404: 7.5 → 2.7 ms), so the bench runs without it.
      "--var",
      "LOG_LEVEL:warn",
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
      // Serves /__scheduled, so the fencing check can run the real reaper on demand.
      "--test-scheduled",
    ],
    env: { WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  const apiUrl = `http://127.0.0.1:${port}`;
  await Promise.race([
    waitHealthy(apiUrl),
    wrangler.exited.then((s) => {
      throw new Error(
        `wrangler dev exited (code ${s.code}) before it was healthy:\n${wrangler.tail()}`,
      );
    }),
  ]);
  const libsqlPid = procs.pidOf("libsql");
  if (libsqlPid === undefined) throw new Error("libsql server vanished after start");
  return { apiUrl, libsqlUrl, tokens, pids: { libsql: libsqlPid, wrangler: wrangler.pid } };
}

async function waitHealthy(url: string): Promise<void> {
  const deadline = Date.now() + HEALTHY_WITHIN_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${url}/healthz`);
      last = await r.text();
      if (r.status === 200) return;
    } catch (error) {
      last = String(error);
    }
    await sleep(250);
  }
  throw new Error(`control plane at ${url} not healthy within ${HEALTHY_WITHIN_MS} ms: ${last}`);
}

/** A JSON request with a bearer token; the response is returned as is. */
export function call(
  stack: Stack,
  path: string,
  opts: { token: string; body?: unknown; method?: string },
): Promise<Response> {
  return fetch(`${stack.apiUrl}${path}`, {
    method: opts.method ?? "POST",
    headers: { authorization: `Bearer ${opts.token}`, "content-type": "application/json" },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });
}

export interface ApiClaim {
  readonly id: number;
  readonly attempt: number;
  readonly token: string;
  readonly app: string;
  readonly commitSha: string;
}

/** The SHA-256 of zero bytes: the bench's artifact is an empty file. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * A valid manifest for an empty artifact (no chunks): completion still checks, signs and
 * stores it in the primary bucket, but has no chunk to look up or replicate.
 */
export function emptyManifest(c: ApiClaim): Record<string, unknown> {
  return {
    version: MANIFEST_VERSION,
    app: c.app,
    build_id: c.id,
    commit_sha: c.commitSha,
    created_at: new Date().toISOString(),
    size: 0,
    sha256: EMPTY_SHA256,
    chunker: DEFAULT_CHUNKER_PARAMS,
    chunks: [],
  };
}

/** A worker of the real API: what build-worker does, minus the build. */
export function apiWorker(stack: Stack, workerId: string): QueueWorker<ApiClaim> {
  const token = stack.tokens.builder;
  return {
    async claim() {
      const r = await call(stack, "/v1/worker/claim", { token, body: { worker_id: workerId } });
      if (r.status === 204) return undefined;
      if (r.status !== 200) throw new Error(`claim: HTTP ${r.status}: ${await r.text()}`);
      const body = (await r.json()) as {
        build: { id: number; attempt: number; app: string; commit_sha: string };
        lease_token: string;
      };
      const { id, attempt, app, commit_sha: commitSha } = body.build;
      return { id, attempt, token: body.lease_token, app, commitSha };
    },
    async complete(c) {
      const r = await call(stack, `/v1/worker/builds/${c.id}/complete`, {
        token,
        body: { lease_token: c.token, manifest: emptyManifest(c) },
      });
      if (r.status === 409) {
        await r.body?.cancel();
        return false;
      }
      if (r.status !== 200) throw new Error(`complete: HTTP ${r.status}: ${await r.text()}`);
      await r.body?.cancel();
      return true;
    },
  };
}
