import type { Context } from "../context.ts";
import { clip, relativeTime, status, table } from "../format.ts";
import type { Deployment, DeploymentDetail } from "../types.ts";
import { watchDeployment } from "../watch-deployment.ts";

/** `deploy <app> <build> [--watch]`: sets the app's goal to a deployable build. */
export async function deploy(
  ctx: Context,
  app: string,
  buildId: number,
  o: {
    watch?: boolean | undefined;
    staged?: boolean | undefined;
    canary?: number | undefined;
    bake?: number | undefined;
    regions?: string | undefined;
  },
): Promise<void> {
  const api = await ctx.api();
  const strategy = o.staged
    ? {
        type: "staged",
        ...(o.canary !== undefined ? { canary: { percent: o.canary } } : {}),
        ...(o.bake !== undefined ? { bake_s: o.bake } : {}),
        ...(o.regions ? { regions: o.regions.split(",").map((r) => r.trim()) } : {}),
      }
    : undefined;
  const { body } = await api.post<DeploymentDetail>("/v1/deployments", {
    app,
    build_id: buildId,
    ...(strategy ? { strategy } : {}),
  });
  await started(ctx, body, `Deploying ${app} build ${buildId}`, o.watch === true);
  if (o.watch) await watchDeployment(ctx, api, body.id);
}

/** `rollback <deployment> [--watch]`: redeploys the build that deployment replaced. */
export async function rollback(
  ctx: Context,
  id: number,
  o: { watch?: boolean | undefined },
): Promise<void> {
  const api = await ctx.api();
  const { body } = await api.post<DeploymentDetail>(`/v1/deployments/${id}/rollback`, {});
  await started(ctx, body, `Rolling ${body.app} back to build ${body.build_id}`, o.watch === true);
  if (o.watch) await watchDeployment(ctx, api, body.id);
}

async function started(ctx: Context, d: DeploymentDetail, what: string, watch: boolean) {
  if (ctx.json) {
    // With --watch, the final state is printed when the watch ends.
    if (!watch) ctx.printJson(d);
    return;
  }
  const gen = d.generation === null ? "" : `, generation ${d.generation}`;
  ctx.out(
    `${what}: deployment ${ctx.paint("bold", String(d.id))} ${status(d.status, ctx.paint)}${gen}\n`,
  );
  if (d.status !== "ROLLING" && d.reason) ctx.out(`${d.reason}\n`);
  if (!watch) ctx.out(`Watch it with: status ${d.app}   (or deploy again with --watch)\n`);
}

/** Deployments as a table, with what a rolling one waits for (used by `status`). */
export function deploymentsTable(ctx: Context, rows: Deployment[]): string {
  return table(
    ["ID", "APP", "BUILD", "STATUS", "CREATED", "BY", "WAITING / REASON"],
    rows.map((d) => [
      String(d.id),
      d.app,
      String(d.build_id) + (d.rollback_of ? ` (rollback of ${d.rollback_of})` : ""),
      status(d.status, ctx.paint),
      relativeTime(d.created_at, ctx.now()),
      d.created_by.replace(/ \([^)]*\)$/, ""),
      clip((d.status === "ROLLING" ? d.waiting : d.reason) ?? "", 80),
    ]),
    ctx.paint,
  );
}

/** `pause|resume|abort <deployment>`: operator commands on a rollout. */
export async function control(
  ctx: Context,
  verb: "pause" | "resume" | "abort",
  id: number,
): Promise<void> {
  const api = await ctx.api();
  const { body } = await api.post<DeploymentDetail>(`/v1/deployments/${id}/${verb}`, {});
  if (ctx.json) {
    ctx.printJson(body);
    return;
  }
  ctx.out(
    `deployment ${id} ${status(body.status, ctx.paint)}${body.waiting ? `: ${body.waiting}` : body.reason ? `: ${body.reason}` : ""}\n`,
  );
}
