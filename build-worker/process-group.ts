/**
 * Runs a build command with `sh -c` in its own session and process group (Deno's `detached`
 * spawns with setsid, so the group id is the child's pid) and streams its output as lines. The
 * whole group is killed when the run is aborted, and also after the shell exits, so a build
 * cannot leave processes behind (or hold the output pipes open) once it is over.
 */
import { readLines } from "./log-lines.ts";

export interface RunOptions {
  cwd: string;
  /** The complete environment: nothing of the worker's own is passed on (its token included). */
  env: Record<string, string>;
  /** Each line of stdout and stderr, interleaved by arrival; awaited (backpressure). */
  onLine: (line: string) => Promise<void>;
  /** Told the group's id as soon as the shell is running. */
  onStart?: (pid: number) => void;
  /** Aborting kills the group. */
  signal: AbortSignal;
  /**
   * How long SIGTERM has before SIGKILL when the run is aborted; 0 kills at once. May depend
   * on why the run was aborted (a lost lease allows no grace).
   */
  killGraceMs: (reason: unknown) => number;
}

export interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  /** True when the run was aborted through `signal` (the group was killed). */
  aborted: boolean;
}

/** After the shell exits and its group is killed, how long the output may take to drain. */
const DRAIN_MS = 2_000;

export async function runInProcessGroup(command: string, opts: RunOptions): Promise<RunResult> {
  opts.signal.throwIfAborted();
  const child = new Deno.Command("sh", {
    args: ["-c", command],
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: true,
    detached: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pgid = child.pid;
  opts.onStart?.(pgid);

  const stopReading = new AbortController();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const line of readLines(stream, stopReading.signal)) await opts.onLine(line);
  };
  const output = Promise.all([pump(child.stdout), pump(child.stderr)]);
  // Reported once awaited below; this only keeps an early failure from being "unhandled".
  output.catch(() => {});

  let aborted = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    aborted = true;
    const grace = opts.killGraceMs(opts.signal.reason);
    if (grace <= 0) {
      killGroup(pgid, "SIGKILL");
      return;
    }
    killGroup(pgid, "SIGTERM");
    graceTimer = setTimeout(() => killGroup(pgid, "SIGKILL"), grace);
  };
  opts.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const status = await child.status;
    // Whatever the shell left running goes with it.
    killGroup(pgid, "SIGKILL");
    const drained = await Promise.race([
      output.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), DRAIN_MS)),
    ]);
    if (!drained) {
      // A process that left the group (its own setsid) still holds a pipe: stop reading.
      stopReading.abort();
      await output.catch(() => {});
    } else {
      await output;
    }
    return { code: status.code, signal: status.signal, aborted };
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    clearTimeout(graceTimer);
  }
}

/** Sends `signal` to every process of group `pgid`; a group already gone is fine. */
export function killGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound) && !isNoSuchProcess(err)) throw err;
  }
}

function isNoSuchProcess(err: unknown): boolean {
  return err instanceof Error && /ESRCH|No such process/i.test(err.message);
}
