/**
 * Runs one app's process: `sh -c <run_command>` in the release directory, in its own session and
 * process group (Deno's `detached` spawns with setsid), output appended to the app's log file.
 * A crash is followed by a restart after a backoff (1 s doubling to 30 s; reset once the process
 * stayed up for a minute). Stopping sends SIGTERM to the whole group, then SIGKILL after a grace.
 * The running pid is recorded, so an agent that was killed can stop the orphan it left behind.
 * Before every spawn, first or restart, a preflight may refuse (the app's port held by a process
 * that is not the agent's): nothing is started then, and a restart is tried again later.
 */

import { Backoff, sleep } from "../protocol/backoff.ts";
import type { RunningProcess } from "./agent-state.ts";
import type { Logger } from "./log.ts";

export interface LaunchSpec {
  buildId: number;
  /** The release directory (the process's working directory). */
  dir: string;
  command: string;
  /** The complete environment (nothing of the agent's own is passed on). */
  env: Record<string, string>;
  port: number;
}

export interface SupervisorOptions {
  app: string;
  logger: Logger;
  logFile: string;
  record: (process: RunningProcess | null) => Promise<void>;
  /** SIGTERM to SIGKILL. Default 10 s. */
  stopGraceMs?: number;
  /** Up this long, a process counts as stable (the restart backoff resets). Default 60 s. */
  stableMs?: number;
  backoff?: Backoff;
  /** Before each spawn: null to go ahead, else why the process must not start. */
  preflight?: (spec: LaunchSpec) => Promise<string | null>;
}

/** How the last process ended, for the machine's report. */
export interface LastExit {
  code: number;
  signal: Deno.Signal | null;
  at: number;
}

interface Instance {
  spec: LaunchSpec;
  child: Deno.ChildProcess;
  startedAt: number;
  exited: Promise<Deno.CommandStatus>;
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #backoff: Backoff;
  #instance: Instance | null = null;
  #spec: LaunchSpec | null = null;
  #stopping: AbortController | null = null;
  #restarts = 0;
  #lastExit: LastExit | null = null;
  #refusal: string | null = null;
  #nextStartAt: number | null = null;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#backoff = options.backoff ?? new Backoff({ baseMs: 1000, maxMs: 30_000 });
  }

  /** The build whose process runs (or is being restarted), or null. */
  get buildId(): number | null {
    return this.#spec?.buildId ?? null;
  }

  /** The live process, if one is up right now. */
  get pid(): number | null {
    return this.#instance?.child.pid ?? null;
  }

  /** Resolves when the current process exits (for health checks racing a crash). */
  exited(): Promise<Deno.CommandStatus> | null {
    return this.#instance?.exited ?? null;
  }

  /** Processes started again after an exit (or refused by the preflight) since `start()`. */
  get restarts(): number {
    return this.#restarts;
  }

  /** How the last process of this release ended, if one did. */
  get lastExit(): LastExit | null {
    return this.#lastExit;
  }

  /** Why the last restart was not started (the preflight's reason), until one starts. */
  get refusal(): string | null {
    return this.#refusal;
  }

  /** When the next restart is due, while one is pending. */
  get nextStartAt(): number | null {
    return this.#nextStartAt;
  }

  /** Live pids of the running process's group (the app and whatever it started). */
  async group(): Promise<number[]> {
    const pid = this.pid;
    return pid === null ? [] : (await groupMembers(pid)).map((m) => m.pid);
  }

  /**
   * Stops whatever runs, then runs `spec` and keeps it running. Resolves to null once it runs,
   * or to the preflight's reason when it was not started (nothing is kept running then).
   */
  async start(spec: LaunchSpec): Promise<string | null> {
    await this.stop();
    this.#restarts = 0;
    this.#lastExit = null;
    const refusal = await this.#o.preflight?.(spec);
    if (refusal) {
      this.#o.logger.log("warn", "app:not-started", {
        app: this.#o.app,
        build_id: spec.buildId,
        reason: refusal,
      });
      return refusal;
    }
    this.#spec = spec;
    this.#stopping = new AbortController();
    this.#backoff.reset();
    await this.#spawn(spec, this.#stopping.signal);
    return null;
  }

  /** Stops the process group; no restart follows. */
  async stop(): Promise<void> {
    this.#stopping?.abort();
    this.#stopping = null;
    this.#refusal = null;
    this.#nextStartAt = null;
    const instance = this.#instance;
    const spec = this.#spec;
    this.#spec = null;
    if (!instance) return;
    const pgid = instance.child.pid;
    killGroup(pgid, "SIGTERM");
    const timer = setTimeout(() => killGroup(pgid, "SIGKILL"), this.#o.stopGraceMs ?? 10_000);
    await instance.exited;
    clearTimeout(timer);
    killGroup(pgid, "SIGKILL"); // whatever it left in its group goes with it
    // Wait until the group is really gone: the app (a child of the `sh -c` wrapper) may still
    // hold its port for a moment, and the next release must find it free (fault suite, seed 35).
    await untilGone(pgid);
    await this.#o.record(null);
    if (spec)
      this.#o.logger.log("info", "app:stopped", { app: this.#o.app, build_id: spec.buildId });
  }

  async #spawn(spec: LaunchSpec, stopping: AbortSignal): Promise<void> {
    const instanceId = crypto.randomUUID();
    const child = new Deno.Command("sh", {
      args: ["-c", spec.command],
      cwd: spec.dir,
      env: { ...spec.env, FLEETSHIP_APP_INSTANCE: instanceId },
      clearEnv: true,
      detached: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The pumps end when every holder of the pipes is gone; the exit does not wait for them.
    void appendOutput(this.#o.logFile, [child.stdout, child.stderr]).catch(() => {});
    const exited = child.status;
    const instance: Instance = { spec, child, startedAt: Date.now(), exited };
    this.#instance = instance;
    await this.#o.record({ pid: child.pid, instance: instanceId, build_id: spec.buildId });
    this.#o.logger.log("info", "app:started", {
      app: this.#o.app,
      build_id: spec.buildId,
      pid: child.pid,
      port: spec.port,
    });
    void exited.then((status) => this.#onExit(instance, status, stopping));
  }

  async #onExit(
    instance: Instance,
    status: Deno.CommandStatus,
    stopping: AbortSignal,
  ): Promise<void> {
    if (this.#instance === instance) this.#instance = null;
    killGroup(instance.child.pid, "SIGKILL");
    if (stopping.aborted) return;
    // Everything a watcher of the exit reads is set before the first await: its reaction to the
    // same promise runs right after this one's synchronous part.
    this.#lastExit = { code: status.code, signal: status.signal, at: Date.now() };
    this.#o.logger.log("warn", "app:exited", {
      app: this.#o.app,
      build_id: instance.spec.buildId,
      code: status.code,
      signal: status.signal,
    });
    if (Date.now() - instance.startedAt >= (this.#o.stableMs ?? 60_000)) this.#backoff.reset();
    let first = true;
    while (!stopping.aborted && this.#spec === instance.spec) {
      const delay = this.#backoff.next();
      this.#nextStartAt = Date.now() + delay;
      this.#o.logger.log("info", "app:restarting", {
        app: this.#o.app,
        build_id: instance.spec.buildId,
        in_ms: delay,
      });
      // What was left of the group may hold the port a moment longer: the restart's preflight
      // must not mistake the app's own last socket for another process's.
      if (first) await untilGone(instance.child.pid);
      first = false;
      await sleep(Math.max(0, this.#nextStartAt - Date.now()), stopping);
      if (stopping.aborted || this.#spec !== instance.spec) return;
      this.#restarts++;
      this.#nextStartAt = null;
      const refusal = await this.#o.preflight?.(instance.spec);
      if (stopping.aborted || this.#spec !== instance.spec) return;
      this.#refusal = refusal ?? null;
      if (!refusal) {
        await this.#spawn(instance.spec, stopping).catch(() => {});
        return;
      }
      this.#o.logger.log("warn", "app:not-started", {
        app: this.#o.app,
        build_id: instance.spec.buildId,
        reason: refusal,
      });
    }
  }
}

/**
 * Stops the process group a previous agent left running, if any member still carries the
 * instance marker in its environment. Deno kills a child when its parent dies, but not the
 * child's children, so the group's leader (the shell) is usually gone while the app lives on:
 * look for members. Deno reads /proc only with --allow-all, so `ps` lists them.
 */
export async function stopOrphan(process: RunningProcess): Promise<boolean> {
  const marker = ` FLEETSHIP_APP_INSTANCE=${process.instance}`;
  const members = await groupMembers(process.pid);
  if (!members.some((m) => `${m.command} `.includes(`${marker} `))) return false;
  killGroup(process.pid, "SIGTERM");
  await untilGone(process.pid);
  killGroup(process.pid, "SIGKILL");
  return true;
}

/** Waits (5 s at most) until no live process of group `pgid` is left. */
async function untilGone(pgid: number): Promise<void> {
  for (let i = 0; i < 50 && (await groupMembers(pgid)).length > 0; i++) await sleep(100);
}

/** Live (not zombie) processes of group `pgid`, each with its command line and environment. */
async function groupMembers(pgid: number): Promise<{ pid: number; command: string }[]> {
  const out = await new Deno.Command("ps", {
    args: ["-e", "-ww", "-o", "pid=,pgid=,stat=,args=", "e"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  })
    .output()
    .catch(() => null);
  if (!out?.success) return [];
  const members: { pid: number; command: string }[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && Number(m[2]) === pgid && !m[3]!.startsWith("Z"))
      members.push({ pid: Number(m[1]), command: m[4]! });
  }
  return members;
}

/** Sends `signal` to every process of group `pgid`; a group already gone is fine. */
export function killGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

async function appendOutput(path: string, streams: ReadableStream<Uint8Array>[]): Promise<void> {
  const file = await Deno.open(path, { append: true, create: true });
  try {
    await Promise.all(
      streams.map(async (stream) => {
        for await (const piece of stream) await file.write(piece);
      }),
    );
  } finally {
    file.close();
  }
}
