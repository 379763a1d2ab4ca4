/**
 * A release after its health gate: the machine is healthy only while the process the agent
 * started is. When it exits, the machine is reported `failed` at once (how it ended, how many
 * restarts, the app log's last lines); the supervisor restarts it with its backoff; the machine
 * is `healthy` again only once a process passed a health probe and stayed up for the settle
 * period. Restarts are counted, never reset by a recovery: a flapping app shows them.
 */
import { sleep } from "../protocol/backoff.ts";
import { MAX_DETAIL_LENGTH } from "../protocol/relay-messages.ts";
import type { HealthResult } from "./health.ts";
import type { Logger } from "./log.ts";
import type { Supervisor } from "./supervisor.ts";

export interface WatchOptions {
  app: string;
  buildId: number;
  supervisor: Supervisor;
  logger: Logger;
  /** The app's stdout and stderr: its last lines go into a crash's detail. */
  logFile: string;
  /** How long a restarted process must stay healthy before the machine is healthy again. */
  settleMs: number;
  /** One health probe of the running process (its check, with ownership of the port). */
  probe: (signal: AbortSignal) => Promise<HealthResult>;
  /** The machine's state for this release changed (or its detail did). */
  report: (state: "healthy" | "failed", detail: string | null) => void;
  /** How often a recovering release is looked at. Default 1 s. */
  pollMs?: number;
}

const LOG_TAIL_LINES = 5;
/** The log's share of a detail: its end, so the last words stay. */
const LOG_TAIL_CHARS = 400;
const LOG_TAIL_BYTES = 4096;

export class ReleaseWatch {
  readonly #o: WatchOptions;
  readonly #abort = new AbortController();
  #state: "healthy" | "failed";
  #detail: string | null;

  /** Starts watching; `failing` when the release is already down (its health just failed). */
  constructor(options: WatchOptions, failing?: string) {
    this.#o = options;
    this.#state = failing === undefined ? "healthy" : "failed";
    this.#detail = failing ?? null;
    void this.#run(failing !== undefined).catch((err) => {
      if (this.#abort.signal.aborted) return;
      // Not expected; the app's state then stays as last reported, and the log says why.
      this.#o.logger.log("error", "deploy:error", {
        app: this.#o.app,
        build_id: this.#o.buildId,
        error: `watching the release failed: ${err instanceof Error ? err.message : err}`,
        retry_in_ms: 0,
      });
    });
  }

  get buildId(): number {
    return this.#o.buildId;
  }

  get state(): "healthy" | "failed" {
    return this.#state;
  }

  get detail(): string | null {
    return this.#detail;
  }

  /** Stops watching (before the agent itself stops or switches the process). */
  stop(): void {
    this.#abort.abort();
  }

  #set(state: "healthy" | "failed", full: string | null): void {
    if (this.#abort.signal.aborted) return;
    const detail = full?.slice(0, MAX_DETAIL_LENGTH) ?? null;
    if (state === this.#state && detail === this.#detail) return;
    this.#state = state;
    this.#detail = detail;
    this.#o.report(state, detail);
  }

  async #run(recovering: boolean): Promise<void> {
    const signal = this.#abort.signal;
    const sup = this.#o.supervisor;
    for (;;) {
      if (!recovering) {
        const exited = sup.exited();
        if (exited) await Promise.race([exited, abortPromise(signal)]);
        if (signal.aborted) return;
        const detail = await this.#crashDetail();
        if (signal.aborted) return;
        this.#o.logger.log("warn", "app:crashed", {
          app: this.#o.app,
          build_id: this.#o.buildId,
          restarts: sup.restarts,
          detail,
        });
        this.#set("failed", detail);
      }
      recovering = false;
      await this.#recover(signal);
      if (signal.aborted) return;
    }
  }

  /** Until a process passed a probe and stayed up (same pid) for the settle period. */
  async #recover(signal: AbortSignal): Promise<void> {
    const sup = this.#o.supervisor;
    let pid: number | null = null;
    let healthySince: number | null = null;
    for (;;) {
      await sleep(this.#o.pollMs ?? 1_000, signal);
      if (signal.aborted) return;
      if (sup.pid === null || sup.pid !== pid) {
        pid = sup.pid;
        healthySince = null;
        if (pid === null) {
          const detail = await this.#crashDetail();
          this.#set("failed", detail);
          continue;
        }
      }
      const settled = healthySince !== null && Date.now() - healthySince >= this.#o.settleMs;
      if (healthySince !== null && !settled) continue;
      const h = await this.#o.probe(signal);
      if (signal.aborted) return;
      if (!h.ok || sup.pid !== pid) {
        healthySince = null;
        if (!h.ok) this.#set("failed", await this.#crashDetail(h.reason));
        continue;
      }
      if (!settled) {
        healthySince = Date.now();
        continue;
      }
      this.#o.logger.log("info", "app:recovered", {
        app: this.#o.app,
        build_id: this.#o.buildId,
        restarts: sup.restarts,
      });
      this.#set("healthy", null);
      return;
    }
  }

  /** How the release went down, in words, with what a probe saw and the app log's last lines. */
  async #crashDetail(probe?: string): Promise<string> {
    const sup = this.#o.supervisor;
    const parts: string[] = [];
    const exit = sup.lastExit;
    if (exit) {
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      parts.push(`the app's process ${how} after it was healthy`);
    } else {
      parts.push("the app's process is not running");
    }
    parts.push(`${sup.restarts} restart${sup.restarts === 1 ? "" : "s"} since the release started`);
    if (sup.refusal) parts.push(`restart refused: ${sup.refusal}`);
    const next = sup.nextStartAt;
    // A time, not a countdown: the detail changes only when something happened.
    if (next !== null) parts.push(`next restart at ${new Date(next).toISOString().slice(11, 19)}Z`);
    else if (sup.pid !== null) parts.push(`restarted as pid ${sup.pid}, not yet healthy`);
    if (probe) parts.push(`probe: ${probe}`);
    const tail = await logTail(this.#o.logFile);
    if (tail) parts.push(`last log: ${tail}`);
    return parts.join("; ");
  }
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** The last few non-empty lines of the app's log, joined with " | ". */
export async function logTail(path: string): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch {
    return "";
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - LOG_TAIL_BYTES);
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - start);
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    const lines = new TextDecoder()
      .decode(buf.subarray(0, n))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    if (start > 0) lines.shift(); // the first line may be cut
    return lines.slice(-LOG_TAIL_LINES).join(" | ").slice(-LOG_TAIL_CHARS);
  } finally {
    file.close();
  }
}
