/**
 * Helpers for tests/relay-agent.test.ts: the control plane's API as a test drives it, builds
 * published without a build worker (chunks uploaded, then claimed and completed as a builder),
 * and region relays and agents run as real Deno processes (the programs' own entry points).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { manifestFromStream } from "../../protocol/artifact.ts";
import type { ChunkerParams } from "../../protocol/chunker-params.ts";
import { sha256Hex } from "../../protocol/hash.ts";
import { fillPseudoRandom } from "../../protocol/test-support.ts";
import { DENO, freePort, ROOT, type Stack } from "./stack.ts";

/** Small chunks: a few MiB of artifact make dozens of chunks. */
export const TEST_CHUNKER: ChunkerParams = {
  algorithm: "fastcdc-2020",
  min_size: 16 * 1024,
  avg_size: 64 * 1024,
  max_size: 256 * 1024,
  normalization: 1,
};

export async function enrollmentSecret(stack: Stack): Promise<string> {
  const text = await readFile(join(stack.dataDir, ".dev.vars"), "utf8");
  const secret = /^ENROLLMENT_SECRET=(.+)$/m.exec(text)?.[1];
  if (!secret) throw new Error("no ENROLLMENT_SECRET in .dev.vars");
  return secret.trim();
}

/** Whatever JSON the API answered (tests pick the fields they check). */
export type Json = any;

export async function api(
  stack: Stack,
  method: string,
  path: string,
  opts: { token: string; body?: unknown; bytes?: Uint8Array },
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${opts.token}` };
  let body: BodyInit | null = null;
  if (opts.bytes) {
    headers["Content-Type"] = "application/octet-stream";
    body = opts.bytes as Uint8Array<ArrayBuffer>;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const response = await fetch(`${stack.url}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: Json = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed };
}

export async function must(
  stack: Stack,
  method: string,
  path: string,
  opts: { token: string; body?: unknown; bytes?: Uint8Array },
): Promise<Json> {
  const r = await api(stack, method, path, opts);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * A runnable artifact: a shell script that serves HTTP on $PORT with Deno (the script after the
 * heredoc is never read, so `padBytes` of pseudo-random padding make it as large as wanted).
 * `GET /` answers `{"build": <buildId>}`; `GET /healthz` answers 200, or 503 when `healthy` is false.
 * It refuses to start (exit 3) while a file `no-restart` is in its release directory, so a test
 * can make a crashed app's restarts fail.
 */
export function testArtifact(
  buildId: number,
  opts: { healthy?: boolean; padBytes?: number; seed?: number } = {},
): Uint8Array {
  const healthStatus = opts.healthy === false ? 503 : 200;
  const script = `#!/bin/sh
# fleetship test app, build ${buildId}
if [ -e ./no-restart ]; then echo "refusing to start: no-restart" >&2; exit 3; fi
exec ${DENO} run --allow-net --allow-env --no-prompt --ext=ts - <<'EOF'
const port = Number(Deno.env.get("PORT"));
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/healthz") return new Response("health", { status: ${healthStatus} });
  return Response.json({ build: ${buildId}, pid: Deno.pid });
});
EOF
exit 0
`;
  const head = new TextEncoder().encode(script);
  const pad = new Uint8Array(opts.padBytes ?? 0);
  fillPseudoRandom(pad, opts.seed ?? 7);
  const out = new Uint8Array(head.length + pad.length);
  out.set(head);
  out.set(pad, head.length);
  return out;
}

let commits = 0;

/**
 * Publishes a build of `app` whose artifact is `artifact(buildId)`: queues it, claims it as a
 * builder, uploads its chunks, completes it, and waits until it is deployable.
 */
export async function publishBuild(
  stack: Stack,
  app: string,
  artifact: (buildId: number) => Uint8Array,
): Promise<{ buildId: number; chunks: string[] }> {
  const { deployer, builder } = stack.tokens;
  const commit = (++commits).toString(16).padStart(40, "0");
  const queued = await must(stack, "POST", "/v1/builds", {
    token: deployer,
    body: { app, commit_sha: commit, force: true },
  });
  const claim = await must(stack, "POST", "/v1/worker/claim", {
    token: builder,
    body: { worker_id: "test", wait_s: 5 },
  });
  if (claim.build.id !== queued.id)
    throw new Error(`claimed ${claim.build.id}, expected ${queued.id}`);
  const bytes = artifact(queued.id);
  const uploads: Promise<unknown>[] = [];
  const manifest = await manifestFromStream(
    (async function* () {
      yield bytes;
    })(),
    { app, build_id: queued.id, commit_sha: commit },
    {
      params: TEST_CHUNKER,
      onChunk: (chunk) => {
        uploads.push(
          must(stack, "PUT", `/v1/chunks/${chunk.digest}`, { token: builder, bytes: chunk.bytes }),
        );
      },
    },
  );
  await Promise.all(uploads);
  if (manifest.sha256 !== (await sha256Hex(bytes))) throw new Error("manifest hash mismatch");
  await must(stack, "POST", `/v1/worker/builds/${queued.id}/complete`, {
    token: builder,
    body: { lease_token: claim.lease_token, manifest },
  });
  await until(`build ${queued.id} deployable`, async () => {
    const b = await must(stack, "GET", `/v1/builds/${queued.id}`, { token: deployer });
    return b.deployable === true;
  });
  return { buildId: queued.id, chunks: manifest.chunks.map((c) => c.digest) };
}

/** Polls `fn` until it returns something truthy. */
export async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  ms = 30_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A Deno program run as a real process, its JSON log lines kept. */
export class DenoProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string> = {},
    /** Also appends every line to this file (for a look after a failure). */
    logFile?: string,
  ) {
    this.#child = spawn(DENO, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    const onData = (d: Buffer) => {
      buffer += d.toString();
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        this.lines.push(line);
        if (logFile) appendFileSync(logFile, `${line}\n`);
        if (this.#killWhen?.(line)) {
          this.#killWhen = null;
          this.#child.kill("SIGKILL");
        }
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf("\n");
      }
    };
    this.#child.stdout?.on("data", onData);
    this.#child.stderr?.on("data", onData);
    this.exited = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
  }

  #killWhen: ((line: string) => boolean) | null = null;

  /** SIGKILLs the process the moment it prints a line for which `test` holds (no polling lag). */
  killWhen(test: (line: string) => boolean): void {
    this.#killWhen = test;
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Parsed log events named `event`. */
  events(event: string): Json[] {
    const out: Json[] = [];
    for (const line of this.lines) {
      if (!line.includes(`"event":"${event}"`)) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        // not a log line
      }
    }
    return out;
  }

  async waitForEvent(
    event: string,
    match: (e: Json) => boolean = () => true,
    ms = 30_000,
  ): Promise<Json> {
    return await until(
      `${this.name}: ${event}`,
      () => {
        if (!this.running && !this.events(event).some(match))
          throw new Error(`${this.name} exited:\n${this.tail()}`);
        return this.events(event).find(match);
      },
      ms,
    );
  }

  tail(n = 30): string {
    return this.lines.slice(-n).join("\n");
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000): Promise<number | null> {
    if (this.running) {
      process.kill(this.pid, signal);
      const timer = setTimeout(() => this.running && process.kill(this.pid, "SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return await this.exited;
  }
}

/** Permissions the relay and the agent run with (the same as their deno.json tasks). */
export const RELAY_FLAGS = [
  "run",
  "--unstable-kv",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=hostname",
];
/**
 * The agent runs with --allow-all: it proves that the socket on an app's port is its app's from
 * /proc, which Deno reads only with all permissions (and --allow-run, which the agent needs to
 * run apps, already grants as much in effect).
 */
export const AGENT_FLAGS = [
  "run",
  // Profiling a bench or test agent: BENCH_AGENT_V8_FLAGS=--perf-basic-prof (docs/benchmarks.md).
  ...(process.env.BENCH_AGENT_V8_FLAGS ? [`--v8-flags=${process.env.BENCH_AGENT_V8_FLAGS}`] : []),
  "--unstable-kv",
  "--allow-all",
];

/**
 * Starts a region relay for `stack` on loopback (a relay token of the region is minted) and waits
 * until it serves. Its log goes to `<work>/<name>.log`.
 */
export async function startRelay(
  stack: Stack,
  o: { region: string; name: string; work: string },
): Promise<{ proc: DenoProcess; url: string }> {
  const token = (
    await must(stack, "POST", "/v1/tokens", {
      token: stack.tokens.admin,
      body: { name: `${o.name} token`, role: "relay", region: o.region },
    })
  ).token;
  const port = await freePort();
  const proc = new DenoProcess(
    o.name,
    [
      ...RELAY_FLAGS,
      "region-relay/main.ts",
      "--url",
      stack.url,
      "--region",
      o.region,
      "--relay-id",
      o.name,
      "--hostname",
      "127.0.0.1",
      "--port",
      String(port),
      "--cache-dir",
      join(o.work, o.name),
      "--public-key",
      stack.publicKey,
    ],
    { FLEETSHIP_RELAY_TOKEN: token },
    join(o.work, `${o.name}.log`),
  );
  await proc.waitForEvent("relay:started");
  return { proc, url: `http://127.0.0.1:${port}` };
}

/**
 * Starts an agent of `region` that enrolls with `secret`, connects to `relay`, and runs its apps
 * from `appPort` on; waits until it has started.
 */
export async function startAgent(
  stack: Stack,
  o: {
    region: string;
    name: string;
    work: string;
    relay: string;
    secret: string;
    extra?: string[];
    env?: Record<string, string>;
    /** The first app's port (again, for an agent restarted on its state directory). */
    appPort?: number;
  },
): Promise<{ proc: DenoProcess; appPort: number }> {
  const appPort = o.appPort ?? (await freePort());
  const proc = new DenoProcess(
    o.name,
    [
      ...AGENT_FLAGS,
      "agent-deno/main.ts",
      "--url",
      stack.url,
      "--region",
      o.region,
      "--machine-id",
      o.name,
      "--relay",
      o.relay,
      "--state-dir",
      join(o.work, o.name),
      "--public-key",
      stack.publicKey,
      "--app-port-base",
      String(appPort),
      ...(o.extra ?? []),
    ],
    { FLEETSHIP_ENROLLMENT_SECRET: o.secret, ...o.env },
    join(o.work, `${o.name}.log`),
  );
  await proc.waitForEvent("agent:started");
  return { proc, appPort };
}

/** Reads one sample of a relay's Prometheus metric. */
export async function relayMetric(relayUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${relayUrl}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text);
  if (!m) throw new Error(`no metric ${name}`);
  return Number(m[1]);
}

/** The build the app on `port` says it is, or null when it does not answer. */
export async function servedBuild(port: number): Promise<number | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) });
    return ((await r.json()) as { build: number }).build;
  } catch {
    return null;
  }
}
