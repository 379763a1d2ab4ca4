import type { ApiClient } from "./api.ts";
import type { Context } from "./context.ts";
import { CliError } from "./errors.ts";
import { pollOnce } from "./poll.ts";
import type { ProgressView } from "./progress.ts";
import type { DeploymentDetail, Wave } from "./types.ts";

/**
 * Follows a deployment: a bar per region (machines healthy on the build, of the machines
 * running the app), with the deployment's plain-words `waiting` reason under the bars.
 * Resolves when it SUCCEEDED; throws a `failed` CliError (exit 1) with the reason when it
 * FAILED, was ROLLED_BACK, ABORTED or SUPERSEDED.
 */
export async function watchDeployment(
  ctx: Context,
  api: ApiClient,
  id: number,
): Promise<DeploymentDetail> {
  const view = ctx.json ? undefined : ctx.progress();
  let last: DeploymentDetail | undefined;
  try {
    for (;;) {
      last = await pollOnce(ctx, () => api.get<DeploymentDetail>(`/v1/deployments/${id}`));
      if (view) render(ctx, view, last);
      if (last.status === "SUCCEEDED") break;
      if (last.status !== "ROLLING") throw deploymentFailure(last);
      await ctx.sleep(ctx.pollMs);
    }
  } finally {
    view?.stop();
    if (ctx.json && last) ctx.printJson(last);
  }
  if (!ctx.json) {
    const healthy = last.regions.reduce((n, r) => n + r.counts.healthy, 0);
    const where =
      healthy === 0 ? `no machine runs ${last.app} yet` : `healthy on ${healthy} machines`;
    const text = `Deployment ${id} SUCCEEDED: ${last.app} build ${last.build_id}, ${where}.`;
    ctx.out(`${ctx.paint("green", text)}\n`);
  }
  return last;
}

function render(ctx: Context, view: ProgressView, d: DeploymentDetail): void {
  const width = Math.max(0, ...d.regions.map((r) => r.region.length));
  for (const r of d.regions) {
    view.bar(`region:${r.region}`, {
      label: r.region.padEnd(width),
      value: r.counts.healthy,
      total: r.machines,
      detail: regionText(r),
    });
  }
  const waves = d.waves ?? [];
  if (waves.length > 1) view.line("waves", `waves: ${waves.map(waveText).join(" · ")}`);
  const waiting =
    d.status !== "ROLLING"
      ? `${d.status}${d.reason ? `: ${d.reason}` : ""}`
      : d.paused_by
        ? `paused by ${d.paused_by}`
        : (d.waiting ?? "waiting for the machines' reports");
  view.line("waiting", ctx.paint("dim", `deployment ${d.id}: ${waiting}`));
}

/** "canary 10% passed", "eu-west baking". */
const waveText = (w: Wave): string =>
  `${w.name}${w.percent !== null && w.percent < 100 ? ` ${w.percent}%` : ""} ${w.status}`;

/** "3/5 healthy, 2 downloading, 1 unreachable"; the counts that are not zero. */
export function regionText(r: DeploymentDetail["regions"][number]): string {
  if (r.machines === 0) return "no machines run this app";
  const c = r.counts;
  const rest = (
    [
      ["pending", c.pending],
      ["downloading", c.downloading],
      ["installed", c.installed],
      ["failed", c.failed],
      ["unreachable", c.unreachable],
    ] as const
  )
    .filter(([, n]) => n > 0)
    .map(([what, n]) => `${n} ${what}`);
  return [`${c.healthy}/${r.machines} healthy`, ...rest].join(", ") + (r.done ? " ✓" : "");
}

export function deploymentFailure(d: DeploymentDetail): CliError {
  return new CliError(
    "failed",
    `deployment_${d.status.toLowerCase()}`,
    `deployment ${d.id} of ${d.app} build ${d.build_id} ${d.status}: ${d.reason ?? "no reason given"}`,
  );
}
