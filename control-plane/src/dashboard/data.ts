import { desc, eq } from "drizzle-orm";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { builds, deployments } from "../db/schema.ts";
import { deploymentProgress } from "../deployments/rollout.ts";
import type { Env } from "../env.ts";
import { regionStub } from "../goal-state/stubs.ts";
import { buildView } from "../queue/build-view.ts";
import { readLogs } from "../queue/read-logs.ts";
import { targetRegions } from "../replication/start.ts";
import { replicationStatus } from "../replication/status.ts";
import { deploymentView } from "../routes/deployments.ts";

/** What the dashboard shows, read with the same functions the API uses. */
export async function overviewData(env: Env, db: Db, config: Config) {
  const [recentBuilds, recentDeployments, regions] = await Promise.all([
    db.select().from(builds).orderBy(desc(builds.id)).limit(25),
    db.select().from(deployments).orderBy(desc(deployments.id)).limit(15),
    Promise.all(
      config.regions.map(async (name, i) => ({
        name,
        primary: i === 0,
        summary: await regionStub(env, name).summary(name),
      })),
    ),
  ]);
  return {
    builds: recentBuilds.map(buildView),
    deployments: recentDeployments.map(deploymentView),
    regions: regions.map((r) => ({
      name: r.name,
      primary: r.primary,
      relays: r.summary.relays,
      machines: r.summary.relays.reduce((n, x) => n + x.machines, 0),
      reachable: r.summary.relays.filter((x) => !x.stale).reduce((n, x) => n + x.machines, 0),
      // Failed machines stay on the overview with their reason after any deployment ended.
      failed: r.summary.problems
        .filter((m) => m.reachable && m.problem === "failed")
        .map((m) => ({
          machine_id: m.machine_id,
          app: m.app,
          detail: m.detail ?? null,
          restarts: m.restarts ?? 0,
        })),
    })),
  };
}
export type Overview = Awaited<ReturnType<typeof overviewData>>;

export async function buildData(db: Db, config: Config, id: number) {
  const row = await db.query.builds.findFirst({ where: eq(builds.id, id) });
  if (!row) return null;
  const targets = await targetRegions(db, config, row.app);
  const [rep, logs] = await Promise.all([
    replicationStatus(db, id, targets),
    readLogs(db, id, undefined, 2000),
  ]);
  return {
    build: buildView(row),
    deployable: row.status === "SUCCEEDED" && rep.deployable,
    replication: rep.regions,
    lines: logs.lines,
  };
}
export type BuildData = NonNullable<Awaited<ReturnType<typeof buildData>>>;

export async function deploymentData(env: Env, db: Db, id: number) {
  const row = await db.query.deployments.findFirst({ where: eq(deployments.id, id) });
  if (!row) return null;
  const progress = await deploymentProgress(env, db, row);
  const view = deploymentView(row);
  return {
    deployment: {
      ...view,
      waiting: progress.waiting,
    },
    progress,
  };
}
export type DeploymentData = NonNullable<Awaited<ReturnType<typeof deploymentData>>>;
