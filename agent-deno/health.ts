/**
 * Health of a freshly started release, with a deadline: an `http` check wants a 2xx from
 * `http://127.0.0.1:$PORT<path>`, a `command` check wants `sh -c <command>` (in the release
 * directory, with the app's environment) to exit 0; with no check, the process must still be up
 * after a short settling time. A process that exits meanwhile fails the check at once. An http
 * answer counts only when `ownership` proves that the socket listening on the port is the app's
 * own (another process answering on the port is no proof of the app's health).
 */

import { sleep } from "../protocol/backoff.ts";
import type { HealthCheck } from "../protocol/goal.ts";

export type HealthResult = { ok: true; ms: number } | { ok: false; reason: string };

export interface HealthOptions {
  check: HealthCheck | null;
  port: number;
  dir: string;
  env: Record<string, string>;
  deadlineMs: number;
  /** Resolves if the app's process exits. */
  exited: Promise<Deno.CommandStatus> | null;
  signal: AbortSignal;
  /** For http checks: null when the port's listening socket is the app's, else why not. */
  ownership?: () => Promise<string | null>;
  /** With no health check: how long the process must stay up. Default 2 s. */
  settleMs?: number;
  intervalMs?: number;
}

export async function checkHealth(o: HealthOptions): Promise<HealthResult> {
  const started = Date.now();
  let exitedReason: string | null = null;
  void o.exited?.then((s) => {
    exitedReason = `the process exited (code ${s.code}${s.signal ? `, ${s.signal}` : ""}) before it was healthy`;
  });
  const interval = o.intervalMs ?? 250;
  if (o.check === null) {
    await sleep(o.settleMs ?? 2_000, o.signal);
    return exitedReason
      ? { ok: false, reason: exitedReason }
      : { ok: true, ms: Date.now() - started };
  }
  let last = "no answer yet";
  while (Date.now() - started < o.deadlineMs) {
    o.signal.throwIfAborted();
    if (exitedReason) return { ok: false, reason: exitedReason };
    const remaining = o.deadlineMs - (Date.now() - started);
    const attempt =
      o.check.type === "http"
        ? await httpOnce(o, o.check.path, remaining)
        : await commandOnce(o, o.check.command, remaining);
    if (attempt === null) return { ok: true, ms: Date.now() - started };
    last = attempt;
    await sleep(interval, o.signal);
  }
  if (exitedReason) return { ok: false, reason: exitedReason };
  return { ok: false, reason: `not healthy within ${Math.round(o.deadlineMs / 1000)} s: ${last}` };
}

/** null when healthy, else why not. */
async function httpOnce(
  o: HealthOptions,
  path: string,
  remainingMs: number,
): Promise<string | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${o.port}${path}`, {
      signal: AbortSignal.any([
        o.signal,
        AbortSignal.timeout(Math.max(100, Math.min(2_000, remainingMs))),
      ]),
    });
    await response.body?.cancel();
    if (!response.ok) return `GET ${path} answered ${response.status}`;
    const problem = await o.ownership?.();
    return problem ? `GET ${path} answered ${response.status}, but ${problem}` : null;
  } catch (err) {
    return `GET ${path}: ${err instanceof Error ? err.message : err}`;
  }
}

async function commandOnce(
  o: HealthOptions,
  command: string,
  remainingMs: number,
): Promise<string | null> {
  const child = new Deno.Command("sh", {
    args: ["-c", command],
    cwd: o.dir,
    env: o.env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.any([
      o.signal,
      AbortSignal.timeout(Math.max(100, Math.min(10_000, remainingMs))),
    ]),
  }).spawn();
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
  if (status.success) return null;
  return `health command exited ${status.code}${stderr ? `: ${stderr.trim().slice(0, 200)}` : ""}`;
}
