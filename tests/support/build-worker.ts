// Helpers for tests/build-worker.test.ts: the build worker as a real Deno process (the same
// binary and permissions as `deno task build-worker`), the sample app's repository, and the
// few API calls the tests make.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { DENO, ROOT, type Stack } from "./stack.ts";

/** The deno task's permissions (deno.json "build-worker"). */
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-sys",
];

export interface WorkerEvent {
  event: string;
  level: string;
  build_id?: number;
  [field: string]: unknown;
}

export interface WorkerProcess {
  pid: number;
  workerId: string;
  /** Its log so far, one parsed object per JSON line. */
  events(): WorkerEvent[];
  output(): string;
  waitFor(match: (e: WorkerEvent) => boolean, timeoutMs: number): Promise<WorkerEvent>;
  /** Peak resident memory (VmHWM) in KiB, while the process lives. */
  peakRssKiB(): Promise<number>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: string | null }>;
}

const running = new Set<ChildProcess>();

/** Starts `build-worker/main.ts` against `stack`, in its own workspace. */
export function startWorker(
  stack: Stack,
  opts: { workspace: string; workerId: string; args?: string[] },
): WorkerProcess {
  const child = spawn(
    DENO,
    [
      "run",
      ...PERMISSIONS,
      "build-worker/main.ts",
      "--url",
      stack.url,
      "--workspace",
      opts.workspace,
      "--worker-id",
      opts.workerId,
      "--claim-wait-s",
      "2",
      ...(opts.args ?? []),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, FLEETSHIP_BUILDER_TOKEN: stack.tokens.builder, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  running.add(child);
  let out = "";
  const events: WorkerEvent[] = [];
  let partial = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d;
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      try {
        events.push(JSON.parse(line) as WorkerEvent);
      } catch {
        // Not a log line (there are none such, but a test should not die of one).
      }
    }
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const pid = child.pid ?? 0;
  return {
    pid,
    workerId: opts.workerId,
    events: () => events,
    output: () => out,
    async waitFor(match, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(
            `worker ${opts.workerId}: no such event; its output:\n${out.slice(-6000)}`,
          );
        }
        await sleep(50);
      }
    },
    async peakRssKiB() {
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
      if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
      return Number(m[1]);
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return await exited;
    },
  };
}

/** Kills (by pid) any worker a failed test left running. */
export function killLeftoverWorkers(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** Runs dev/sample-app/create-repo.ts as its CLI. */
export async function createSampleRepo(
  dir: string,
): Promise<{ repoUrl: string; commits: string[] }> {
  const { stdout } = await promisify(execFile)(
    DENO,
    ["run", "--allow-read", "--allow-write", "--allow-run", "dev/sample-app/create-repo.ts", dir],
    { cwd: ROOT },
  );
  return JSON.parse(stdout) as { repoUrl: string; commits: string[] };
}

/** Live (non-zombie) processes whose process group is `pgid`. */
export async function liveProcessesInGroup(pgid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) found.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Sends SIGKILL to process group `pgid` if it still exists (test hygiene). */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BuildView {
  id: number;
  app: string;
  commit_sha: string;
  status: "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED";
  failure_reason: string | null;
  failure_message: string | null;
  attempt: number;
  worker_id: string | null;
  size_bytes: number | null;
}

/** The API calls the tests make, each checked for the status it expects. */
export class Api {
  constructor(private readonly stack: Stack) {}

  async call(
    method: string,
    path: string,
    opts: { token?: keyof Stack["tokens"] | string; body?: unknown } = {},
  ): Promise<{ status: number; body: any }> {
    const role = opts.token ?? "admin";
    const token = role in this.stack.tokens ? this.stack.tokens[role as "admin"] : role;
    const res = await fetch(`${this.stack.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(opts.body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async registerApp(app: {
    name: string;
    repo_url: string;
    build_command: string;
    artifact_path: string;
    build_timeout_s?: number;
  }): Promise<void> {
    const r = await this.call("POST", "/v1/applications", {
      body: { run_command: "out/sample-app", ...app },
    });
    if (r.status !== 201)
      throw new Error(`register ${app.name}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  async queueBuild(app: string, commitSha: string): Promise<number> {
    const r = await this.call("POST", "/v1/builds", {
      token: "deployer",
      body: { app, commit_sha: commitSha },
    });
    if (r.status !== 201) throw new Error(`queue ${app}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id as number;
  }

  async build(id: number): Promise<BuildView> {
    const r = await this.call("GET", `/v1/builds/${id}`);
    if (r.status !== 200) throw new Error(`build ${id}: ${r.status}`);
    return r.body as BuildView;
  }

  /** Polls until `match` holds for the build (by default: it ended). */
  async waitForBuild(
    id: number,
    timeoutMs: number,
    match: (b: BuildView) => boolean = (b) => b.status === "SUCCEEDED" || b.status === "FAILED",
  ): Promise<BuildView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = await this.build(id);
      if (match(b)) return b;
      if (Date.now() > deadline) {
        throw new Error(
          `build ${id} still ${b.status} (attempt ${b.attempt}) after ${timeoutMs} ms`,
        );
      }
      await sleep(250);
    }
  }

  async logLines(id: number): Promise<string[]> {
    const lines: string[] = [];
    let after = "";
    for (;;) {
      const r = await this.call("GET", `/v1/builds/${id}/logs${after ? `?after=${after}` : ""}`);
      lines.push(...(r.body.lines as { line: string }[]).map((l) => l.line));
      if (!r.body.next_cursor || r.body.lines.length === 0) return lines;
      after = r.body.next_cursor;
    }
  }
}

/** Directory of the primary bucket's objects in the local stack (miniflare keeps them raw). */
export function primaryBlobsDir(stack: Stack): string {
  return join(stack.dataDir, "wrangler/v3/r2/fleetship-us-east/blobs");
}
