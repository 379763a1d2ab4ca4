import type { Context } from "../context.ts";
import { table } from "../format.ts";
import type { Build, Deployment, DeploymentDetail, Goal } from "../types.ts";
import { buildsTable } from "./build.ts";
import { deploymentsTable } from "./deploy.ts";

/** How many of the latest deployments and builds `status` shows. */
const LATEST = 5;

/** `status [app]`: the current goal, the latest deployments (live waiting reason), the latest builds. */
export async function status(ctx: Context, app: string | undefined): Promise<void> {
  const api = await ctx.api();
  const q = `?${app ? `app=${encodeURIComponent(app)}&` : ""}limit=${LATEST}`;
  const [goal, deps, builds] = await Promise.all([
    api.get<Goal>("/v1/goal"),
    api.get<{ deployments: Deployment[] }>(`/v1/deployments${q}`),
    api.get<{ builds: Build[] }>(`/v1/builds${q}`),
  ]);
  // A rolling deployment's list entry holds its last recorded reason; its detail says what it
  // waits for now.
  const deployments = await Promise.all(
    deps.deployments.map(async (d) =>
      d.status === "ROLLING" ? await api.get<DeploymentDetail>(`/v1/deployments/${d.id}`) : d,
    ),
  );
  const apps = Object.values(goal.apps).filter((g) => !app || g.app === app);
  if (ctx.json) {
    return ctx.printJson({
      goal: app
        ? { generation: goal.generation, apps: Object.fromEntries(apps.map((g) => [g.app, g])) }
        : goal,
      deployments,
      builds: builds.builds,
    });
  }
  const section = (title: string) => ctx.out(`${ctx.paint("bold", title)}\n`);
  section(`Goal (generation ${goal.generation})`);
  ctx.out(
    apps.length === 0
      ? `  nothing deployed${app ? ` for ${app}` : ""} yet\n`
      : table(
          ["APP", "BUILD", "DEPLOYMENT", "GENERATION", "REGIONS"],
          apps.map((g) => [
            g.app,
            String(g.build_id),
            String(g.deployment_id),
            String(g.generation),
            regionTargets(g.regions, g.build_id),
          ]),
          ctx.paint,
        ),
  );
  section("\nLatest deployments");
  ctx.out(deployments.length === 0 ? "  none yet\n" : deploymentsTable(ctx, deployments));
  section("\nLatest builds");
  ctx.out(builds.builds.length === 0 ? "  none yet\n" : buildsTable(ctx, builds.builds));
}

/** "us-east, eu-west" when every region targets the app's build; each region's build otherwise. */
function regionTargets(regions: Goal["apps"][string]["regions"], buildId: number): string {
  return Object.entries(regions)
    .map(([r, t]) => (t.build_id === buildId ? r : `${r} (build ${t.build_id})`))
    .join(", ");
}
