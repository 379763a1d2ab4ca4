// Starts the real local libSQL server (dev/libsql/main.ts) as a Deno child process, for
// tests that need a Hrana endpoint. Real process on purpose: the tests then cover the same
// binary, permissions and startup path as `npm start`.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
// The platform binary itself: node_modules/.bin/deno is a Node shim, and signals sent to a
// shim would not reach the server.
const denoBinary = `${repoRoot}node_modules/@deno/linux-x64-glibc/deno`;
const DENO_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
// Keep the end of the output for error messages without holding a chatty process's whole log.
const STDERR_TAIL_CHARS = 8_000;

export interface LibsqlServerOptions {
  /** Database file; parent directories are created by the server. */
  file: string;
  /** 0 or absent picks a free port. */
  port?: number;
  /** Passed as --idle-stream-timeout-ms (server default 10000). */
  idleStreamTimeoutMs?: number;
  /** Passed as --busy-timeout-ms (server default 5000). */
  busyTimeoutMs?: number;
}

export interface LibsqlServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** kill -9: no chance to flush or close anything (durability tests). */
  kill(): Promise<void>;
}

export async function startLibsqlServer(opts: LibsqlServerOptions): Promise<LibsqlServer> {
  const args = [
    "run",
    ...DENO_PERMISSIONS,
    "dev/libsql/main.ts",
    "--port",
    String(opts.port ?? 0),
    "--file",
    opts.file,
  ];
  if (opts.idleStreamTimeoutMs !== undefined) {
    args.push("--idle-stream-timeout-ms", String(opts.idleStreamTimeoutMs));
  }
  if (opts.busyTimeoutMs !== undefined) args.push("--busy-timeout-ms", String(opts.busyTimeoutMs));

  const child = spawn(denoBinary, args, {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
  });

  const listening = await new Promise<{ url: string }>((resolve, reject) => {
    let pending = "";
    let logTail = "";
    const fail = (problem: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      const logs = (logTail + pending).trim() || "(empty)";
      reject(
        new Error(
          `libsql server ${problem}\n--- stdout (logs) ---\n${logs}\n` +
            `--- stderr ---\n${stderr.trim() || "(empty)"}`,
        ),
      );
    };
    const timer = setTimeout(
      () => fail(`did not report libsql:listening within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    const onError = (error: Error) =>
      fail(`could not be spawned (${denoBinary}): ${error.message}`);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(`exited before listening (code ${code}, signal ${signal})`);
    child.once("error", onError);
    // "close" rather than "exit": it waits for stdout to drain, so the server's own
    // explanation (a libsql:start-failed line) is in the error.
    child.once("close", onExit);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf("\n");
      while (newline !== -1) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
        logTail = `${logTail}${line}\n`.slice(-STDERR_TAIL_CHARS);
        const event = parseLogLine(line);
        if (event?.event === "libsql:listening" && typeof event.url === "string") {
          clearTimeout(timer);
          child.off("close", onExit);
          child.off("error", onError);
          // A later failure to signal the process surfaces through stop(), not as a crash.
          child.on("error", () => undefined);
          resolve({ url: event.url });
          return;
        }
      }
    });
  });
  // Keep draining stdout so a chatty server never blocks on a full pipe.
  child.stdout.removeAllListeners("data");
  child.stdout.resume();

  const url = listening.url;
  return {
    url,
    port: Number(new URL(url).port),
    stop: () => stopChild(child, exited),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  await exited;
}
