import type { ApiClient } from "./api.ts";
import type { Context } from "./context.ts";
import { CliError } from "./errors.ts";
import { bytes, clock, duration } from "./format.ts";
import { pollOnce } from "./poll.ts";
import type { ProgressView } from "./progress.ts";
import type { BuildDetail, RegionReplication } from "./types.ts";

/**
 * Follows a build until it is deployable: its phase (QUEUED → RUNNING attempt n → SUCCEEDED or
 * FAILED), then a bar per region for replication. Resolves once deployable; throws a `failed`
 * CliError (exit 1) with the reason when the build or a region's replication fails.
 */
export async function watchBuild(ctx: Context, api: ApiClient, id: number): Promise<BuildDetail> {
  const view = ctx.json ? undefined : ctx.progress();
  let last: BuildDetail | undefined;
  let first = true;
  try {
    for (;;) {
      last = await pollOnce(ctx, () => api.get<BuildDetail>(`/v1/builds/${id}`));
      if (view) render(ctx, view, last, first);
      first = false;
      const failure = buildFailure(last);
      if (failure) throw failure;
      if (last.deployable) break;
      await ctx.sleep(ctx.pollMs);
    }
  } finally {
    view?.stop();
    if (ctx.json && last) ctx.printJson(last);
  }
  if (!ctx.json) {
    const regions = last.replication.map((r) => r.region).join(", ");
    ctx.out(
      `Build ${id} is deployable in ${regions}. Deploy it with: deploy ${last.app} ${id} --watch\n`,
    );
  }
  return last;
}

/**
 * The phase line stays above the bars on a terminal (it is drawn first); in plain output
 * "deployable" comes after the lines of the regions that finished.
 */
function render(ctx: Context, view: ProgressView, b: BuildDetail, first: boolean): void {
  const phase = () => view.line("phase", ctx.paint("bold", phaseText(b, ctx.now())));
  const phaseLast = b.deployable && !first;
  if (!phaseLast) phase();
  if (b.status === "SUCCEEDED") bars(view, b);
  if (phaseLast) phase();
}

function bars(view: ProgressView, b: BuildDetail): void {
  const width = Math.max(...b.replication.map((r) => r.region.length));
  for (const r of b.replication) {
    const empty = r.bytes_total === 0;
    view.bar(`replication:${r.region}`, {
      label: r.region.padEnd(width),
      value: empty ? (r.status === "COMPLETE" ? 1 : 0) : r.bytes_done,
      total: empty ? 1 : r.bytes_total,
      detail: replicationText(r),
    });
  }
}

/** One line for where a build is; stable while nothing changes (plain output prints changes). */
export function phaseText(b: BuildDetail, now: number): string {
  const head = `build ${b.id} (${b.app})`;
  switch (b.status) {
    case "QUEUED":
      return b.run_after
        ? `${head}: QUEUED for attempt ${b.attempt + 1} of ${b.max_attempts}, not before ${clock(b.run_after)}`
        : `${head}: QUEUED`;
    case "RUNNING":
      return `${head}: RUNNING attempt ${b.attempt} of ${b.max_attempts}${b.worker_id ? ` on ${b.worker_id}` : ""}`;
    case "FAILED":
      return `${head}: FAILED (${b.failure_reason ?? "unknown"}) on attempt ${b.attempt}`;
    case "SUCCEEDED": {
      const took = duration(b.started_at, b.finished_at, now);
      const then = b.deployable
        ? "deployable"
        : b.replication.length === 0
          ? "replication starting"
          : `replicating to ${b.replication.length} regions`;
      return `${head}: SUCCEEDED in ${took} (${bytes(b.size_bytes)}); ${then}`;
    }
  }
}

export function replicationText(r: RegionReplication): string {
  const amount = `${r.percent}% ${bytes(r.bytes_done)} of ${bytes(r.bytes_total)}`;
  return r.status === "FAILED"
    ? `FAILED ${amount}: ${r.error ?? "no reason given"}`
    : `${r.status} ${amount}`;
}

/** Why watching ends in failure, or undefined while the build may still become deployable. */
export function buildFailure(b: BuildDetail): CliError | undefined {
  if (b.status === "FAILED") {
    return new CliError(
      "failed",
      b.failure_reason ?? "build_failed",
      `build ${b.id} failed on attempt ${b.attempt}: ${b.failure_message ?? "no message"}`,
    );
  }
  const r = b.replication.find((x) => x.status === "FAILED");
  if (r) {
    return new CliError(
      "failed",
      "replication_failed",
      `replication of build ${b.id} to ${r.region} failed: ${r.error ?? "no reason given"}` +
        ` (retry: POST /v1/builds/${b.id}/replication/retry)`,
    );
  }
  return undefined;
}
