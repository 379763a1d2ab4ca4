// The child processes the bench starts (libSQL server, wrangler dev, PostgreSQL), each
// stopped by its pid, with whatever it spawned (wrangler starts workerd) found through /proc
// and stopped by pid too, so nothing outlives the bench even when it fails half-way.

export interface StartOptions {
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** Run as this user (PostgreSQL refuses to run as root). */
  readonly uid?: number;
  readonly gid?: number;
  /** Resolve once a line of stdout or stderr matches; reject if the child exits first. */
  readonly ready?: RegExp;
  readonly readyTimeoutMs?: number;
  /** The signal that stops the child cleanly (PostgreSQL: SIGINT, "fast" shutdown). */
  readonly stopSignal?: Deno.Signal;
}

export interface Proc {
  readonly name: string;
  readonly pid: number;
  /** The first line that matched `ready`. */
  readonly readyLine: string;
  readonly exited: Promise<Deno.CommandStatus>;
  /** The last lines of output, for error messages. */
  tail(): string;
}

const STOP_GRACE_MS = 5_000;
const TAIL_LINES = 30;

/** Every process started here, in start order; `stopAll` stops them newest first. */
export class Processes {
  readonly #running: { proc: Proc; child: Deno.ChildProcess; stopSignal: Deno.Signal }[] = [];
  readonly #afterStop: (() => Promise<void>)[] = [];

  /** Runs `fn` once every child has stopped (e.g. removing a data directory they used). */
  defer(fn: () => Promise<void>): void {
    this.#afterStop.push(fn);
  }

  async start(name: string, command: string, opts: StartOptions): Promise<Proc> {
    const child = new Deno.Command(command, {
      args: [...opts.args],
      env: { NO_COLOR: "1", ...opts.env },
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.uid === undefined ? {} : { uid: opts.uid }),
      ...(opts.gid === undefined ? {} : { gid: opts.gid }),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const recent: string[] = [];
    let onLine: (line: string) => void = () => {};
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      let buf = "";
      // Keep reading to the end: a child whose pipe fills up would block.
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        buf += text;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          recent.push(line);
          if (recent.length > TAIL_LINES) recent.shift();
          onLine(line);
        }
      }
    };
    void pump(child.stdout).catch(() => {});
    void pump(child.stderr).catch(() => {});
    const tail = () => recent.join("\n");
    const entry = {
      proc: { name, pid: child.pid, readyLine: "", exited: child.status, tail },
      child,
      stopSignal: opts.stopSignal ?? "SIGTERM",
    };
    this.#running.push(entry);
    if (opts.ready === undefined) return entry.proc;
    const ready = opts.ready;
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const readyLine = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`${name} did not print ${ready} within ${timeoutMs} ms:\n${tail()}`)),
        timeoutMs,
      );
      onLine = (line) => {
        if (!ready.test(line)) return;
        clearTimeout(timer);
        onLine = () => {};
        resolve(line);
      };
      void child.status.then((s) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (code ${s.code}) before it was ready:\n${tail()}`));
      });
    });
    entry.proc = { ...entry.proc, readyLine };
    return entry.proc;
  }

  /** The pid of the newest running child called `name`. */
  pidOf(name: string): number | undefined {
    return this.#running.findLast((r) => r.proc.name === name)?.proc.pid;
  }

  /** Stops every child (newest first) and then any of their descendants still alive. */
  async stopAll(): Promise<void> {
    while (this.#running.length > 0) {
      const { proc, child, stopSignal } = this.#running.pop()!;
      const descendants = descendantsOf(proc.pid);
      signal(child.pid, stopSignal);
      const timer = setTimeout(() => signal(child.pid, "SIGKILL"), STOP_GRACE_MS);
      await child.status;
      clearTimeout(timer);
      // Give grandchildren (workerd, postgres backends) a moment to follow their parent.
      for (let i = 0; i < 20 && descendants.some(isAlive); i++) await sleep(100);
      for (const pid of descendants.filter(isAlive)) signal(pid, "SIGKILL");
    }
    for (const fn of this.#afterStop.splice(0)) await fn().catch(() => {});
  }
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    // A zombie still has a /proc entry; its state letter is after the ")" of the name.
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** All descendants of `pid`, from the parent pid in each /proc/N/stat. */
export function descendantsOf(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parentOf.set(Number(entry.name), Number(fields[1]));
    } catch {
      // Exited while we looked.
    }
  }
  const found: number[] = [];
  let frontier = [pid];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const [child, parent] of parentOf) if (frontier.includes(parent)) next.push(child);
    found.push(...next);
    frontier = next;
  }
  return found;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port free on loopback right now (the OS picks it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

// USER_HZ: the unit of the times in /proc/N/stat; 100 on every Linux the bench targets.
const CLOCK_TICKS = 100;

/**
 * CPU time (user + system, seconds) a process has used so far, plus (`reaped`) that of its
 * children it has waited for: how a postmaster's exited backends still count. 0 once gone.
 */
export function cpuSeconds(pid: number, reaped = false): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // `f` starts at field 3 of stat(5): utime is field 14, stime 15, cutime 16, cstime 17.
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    const own = f[11]! + f[12]!;
    return (reaped ? own + f[13]! + f[14]! : own) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/**
 * Share of one core (1.0 = a full core) used from now to `read()` by each process, or with
 * `tree` by it and all its descendants, including ones that start or exit meanwhile
 * (PostgreSQL backends, wrangler's workerd). Read it before tearing connections down.
 */
export function cpuMeter(groups: readonly { pid: number; tree?: boolean }[]): { read(): number[] } {
  const used = () =>
    groups.map(({ pid, tree }) =>
      tree
        ? [pid, ...descendantsOf(pid)].reduce((sum, p) => sum + cpuSeconds(p, true), 0)
        : cpuSeconds(pid),
    );
  const t0 = performance.now();
  const before = used();
  return {
    read() {
      const wall = (performance.now() - t0) / 1000;
      return used().map((s, i) => (s - before[i]!) / wall);
    },
  };
}

/** CPU seconds the whole machine has spent busy (all cores; /proc/stat minus idle and iowait). */
export function machineBusySeconds(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0] ?? "";
  const [, ...ticks] = line.trim().split(/\s+/).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) / CLOCK_TICKS;
}
