/**
 * Helpers for tests/faults.test.ts: every component of the system as a real process on
 * loopback that the test can kill -9 and restart in place (same ports, same files, same
 * state directories), and a seeded PRNG for the moments.
 *
 * The libSQL server and wrangler dev are started here rather than through dev/start.ts:
 * dev/start.ts stops everything when one of its children dies, and the fault suite needs to
 * kill the database under a running control plane.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateSigningKeys } from "../../protocol/signing.ts";
import { seededRandom } from "../../protocol/test-support.ts";
import { type LibsqlServer, startLibsqlServer } from "./libsql.ts";
import { DENO, freePort, ROOT } from "./stack.ts";

/** A seeded PRNG, so a failing seed can be rerun exactly. */
export const prng = seededRandom;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hex(n: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Writes the control plane's local secrets, as dev/start.ts does (plus a short lease). */
export async function writeDevVars(dataDir: string, leaseMs: number) {
  const vars = {
    TOKEN_PEPPER: hex(24),
    SIGNING_KEY: (await generateSigningKeys()).privateKey,
    ENROLLMENT_SECRET: hex(24),
    LEASE_MS: String(leaseMs),
    LIBSQL_AUTH_TOKEN: "",
  };
  await writeFile(
    join(dataDir, ".dev.vars"),
    `${Object.entries(vars)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
    { mode: 0o600 },
  );
  return vars;
}

const run = promisify(execFile);

export async function migrate(libsqlUrl: string): Promise<void> {
  await run(DENO, ["run", "--allow-all", "dev/migrate.ts", "--url", libsqlUrl], { cwd: ROOT });
}

export async function mintToken(libsqlUrl: string, pepper: string, role: string): Promise<string> {
  const { stdout } = await run(
    DENO,
    [
      "run",
      "--allow-all",
      "dev/tokens.ts",
      "--url",
      libsqlUrl,
      "--role",
      role,
      "--name",
      `faults ${role}`,
    ],
    { cwd: ROOT, env: { ...process.env, TOKEN_PEPPER: pepper } },
  );
  return stdout.trim();
}

/** The libSQL server on a fixed file and port, restartable after kill -9. */
export class Database {
  server: LibsqlServer | undefined;
  constructor(
    readonly file: string,
    readonly port: number,
  ) {}
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  async start() {
    // The port may linger a moment after a kill: retry briefly.
    let last: unknown;
    for (let i = 0; i < 20; i++) {
      try {
        this.server = await startLibsqlServer({ file: this.file, port: this.port });
        return;
      } catch (err) {
        last = err;
        await sleep(250);
      }
    }
    throw last;
  }
  async kill9() {
    await this.server?.kill();
    this.server = undefined;
  }
  async stop() {
    await this.server?.stop();
    this.server = undefined;
  }
}

/**
 * `wrangler dev` in a process group of its own (detached), so kill -9 of the group takes
 * workerd with it, as a crashed machine would. Same port and persist directory on restart.
 */
export class ControlPlane {
  child: ChildProcess | undefined;
  exited: Promise<void> = Promise.resolve();
  constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly libsqlUrl: string,
    readonly logFile: string,
  ) {}
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(timeoutMs = 90_000) {
    const inspector = await freePort();
    const child = spawn(
      join(ROOT, "node_modules/.bin/node"),
      [
        join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
        "dev",
        "--cwd",
        ROOT,
        "--ip",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--persist-to",
        join(this.dataDir, "wrangler"),
        "--env-file",
        join(this.dataDir, ".dev.vars"),
        "--var",
        `LIBSQL_URL:${this.libsqlUrl}`,
        "--show-interactive-dev-session=false",
        "--log-level",
        "warn",
        "--inspector-port",
        String(inspector),
      ],
      {
        cwd: ROOT,
        detached: true,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const onData = (d: Buffer) => appendFileSync(this.logFile, d);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`wrangler dev exited early (see ${this.logFile})`);
      try {
        const r = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await r.text();
        if (r.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`control plane not healthy (see ${this.logFile})`);
      await sleep(250);
    }
  }
  /** kill -9 of the whole process group (wrangler and workerd). */
  async kill9() {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
    await this.exited;
    this.child = undefined;
  }
  async stop() {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await this.exited;
    clearTimeout(t);
    // workerd may outlive wrangler on SIGTERM: make sure the group is gone.
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
    this.child = undefined;
  }
}

/** A JSON call that never throws: status 0 when the request did not get an answer. */
export async function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  try {
    const r = await fetch(`${url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: r.status, body: parsed };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

/**
 * Live processes whose command line mentions `dir` or whose working directory is under it:
 * what a test that keeps all its files under `dir` left behind (orphaned app or build
 * processes of a component that was killed -9).
 */
export async function processesUnder(dir: string): Promise<{ pid: number; cmd: string }[]> {
  const { readdir, readFile, readlink } = await import("node:fs/promises");
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmd = (await readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " ");
      const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => "");
      if (cmd.includes(dir) || cwd.startsWith(dir)) found.push({ pid: Number(entry), cmd });
    } catch {
      // gone while we looked
    }
  }
  return found;
}
