import type { ApiClient } from "../api.ts";
import type { Context } from "../context.ts";
import { CliError } from "../errors.ts";
import { clock } from "../format.ts";
import type { BuildDetail, BuildStatus, LogEnd, LogLine, LogPage } from "../types.ts";

/** How many times `logs -f` reconnects after the stream broke off without its end line. */
const RECONNECTS = 5;

/** `logs <build> [-f]`: prints the build's log; exits 1 when the build FAILED. */
export async function logs(ctx: Context, id: number, o: { follow?: boolean }): Promise<void> {
  const api = await ctx.api();
  if (o.follow) return await follow(ctx, api, id);
  const all: LogLine[] = [];
  let page: LogPage;
  let cursor: string | null = null;
  // A page holds at most 500 chunks; read until a page comes back empty.
  for (;;) {
    const query: string = cursor ? `?after=${encodeURIComponent(cursor)}` : "";
    page = await api.get<LogPage>(`/v1/builds/${id}/logs${query}`);
    all.push(...page.lines);
    if (page.lines.length === 0 || page.next_cursor === cursor) break;
    cursor = page.next_cursor;
  }
  if (ctx.json) ctx.printJson({ ...page, lines: all });
  else if (all.length === 0) ctx.out(`Build ${id} has no log yet (${page.status}).\n`);
  else for (const l of all) ctx.out(logLine(ctx, l));
  if (page.status === "FAILED") {
    const b = await api.get<BuildDetail>(`/v1/builds/${id}`);
    throw failed(id, b.failure_reason, b.failure_message);
  }
}

/**
 * Follows `?follow=1`. The cursor names a whole log chunk (attempt:seq) and a chunk holds many
 * lines, so after a cut the stream resumes after the last chunk known complete and skips the
 * lines of the current chunk already printed: no line is lost or printed twice.
 */
async function follow(ctx: Context, api: ApiClient, id: number): Promise<void> {
  let complete: string | null = null;
  let current = { chunk: "", printed: 0 };
  let breaks = 0;
  for (;;) {
    const query = `?follow=1${complete ? `&after=${encodeURIComponent(complete)}` : ""}`;
    let end: LogEnd | undefined;
    let broke: unknown;
    let skip = current.printed;
    try {
      for await (const value of api.ndjson(`/v1/builds/${id}/logs${query}`)) {
        breaks = 0;
        if (isEnd(value)) {
          if (ctx.json) ctx.out(`${JSON.stringify(value)}\n`);
          end = value;
          break;
        }
        const l = value as LogLine;
        const chunk = `${l.attempt}:${l.seq}`;
        if (chunk === current.chunk && skip > 0) {
          skip--;
          continue;
        }
        if (chunk !== current.chunk) {
          if (current.chunk) complete = current.chunk;
          current = { chunk, printed: 0 };
        }
        current.printed++;
        ctx.out(ctx.json ? `${JSON.stringify(l)}\n` : logLine(ctx, l));
      }
    } catch (err) {
      if (!(err instanceof CliError && err.kind === "unreachable")) throw err;
      broke = err;
    }
    if (end?.end === true) {
      return endOf(ctx, id, end.status, end.failure_reason, end.failure_message);
    }
    if (end) {
      // The server ends a long follow with {end: false, reconnect_after}, after whole chunks.
      complete = end.reconnect_after ?? current.chunk;
      current = { chunk: "", printed: 0 };
      continue;
    }
    if (++breaks > RECONNECTS) {
      throw (
        broke ??
        new CliError(
          "unreachable",
          "stream_ended",
          `the log stream of build ${id} kept ending early`,
        )
      );
    }
    await ctx.sleep(ctx.pollMs);
  }
}

function endOf(
  ctx: Context,
  id: number,
  status: BuildStatus,
  reason: string | null,
  message: string | null,
): void {
  if (status === "FAILED") throw failed(id, reason, message);
  if (!ctx.json) ctx.out(`${ctx.paint("dim", `-- build ${id} ${status}`)}\n`);
}

const isEnd = (v: unknown): v is LogEnd =>
  typeof v === "object" && v !== null && "end" in v && typeof v.end === "boolean";

function failed(id: number, reason: string | null, message: string | null): CliError {
  return new CliError(
    "failed",
    reason ?? "build_failed",
    `build ${id} failed: ${message ?? "no message"}`,
  );
}

/** "#1 14:03:07  compiling..." : the attempt and time dimmed before each line. */
export function logLine(ctx: Context, l: LogLine): string {
  return `${ctx.paint("dim", `#${l.attempt} ${clock(l.ts)}`)}  ${l.line}\n`;
}
