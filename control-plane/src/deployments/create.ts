import { eq, sql } from "drizzle-orm";
import { placementRefusal } from "../applications/placement.ts";
import { type Actor, auditInsert } from "../audit.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { applications, builds, deployments } from "../db/schema.ts";
import type { Env } from "../env.ts";
import { ApiError, notFound } from "../errors.ts";
import { log } from "../log.ts";
import { targetRegions } from "../replication/start.ts";
import { replicationStatus } from "../replication/status.ts";
import { initialRollout, rolloutStub } from "./rollout.ts";
import type { Strategy } from "./strategy.ts";

export type DeploymentRow = typeof deployments.$inferSelect;

/** Why a build cannot be deployed, in words, or null when it can. */
async function notDeployable(
  db: Db,
  config: Config,
  app: string,
  buildId: number,
): Promise<ApiError | null> {
  const build = await db.query.builds.findFirst({ where: eq(builds.id, buildId) });
  if (!build) return notFound("build", buildId);
  if (build.app !== app) {
    return new ApiError(
      409,
      "wrong_app",
      `build ${buildId} is a build of ${build.app}, not ${app}`,
    );
  }
  if (build.status !== "SUCCEEDED") {
    return new ApiError(
      409,
      "not_deployable",
      `build ${buildId} is ${build.status}; only SUCCEEDED builds deploy`,
    );
  }
  const targets = await targetRegions(db, config, app);
  const rep = await replicationStatus(db, buildId, targets);
  if (!rep.deployable) {
    const behind = targets
      .map(
        (t) =>
          rep.regions.find((r) => r.region === t) ?? { region: t, status: "PENDING", percent: 0 },
      )
      .filter((r) => r.status !== "COMPLETE")
      .map((r) => `${r.region} ${r.status} ${r.percent}%`);
    return new ApiError(
      409,
      "not_deployable",
      `build ${buildId} is not in every region yet: ${behind.join(", ")}`,
      {
        replication: rep.regions,
      },
    );
  }
  return null;
}

/**
 * Records a deployment with its validated rollout plan and starts its rollout, whose first
 * step points the first wave at the build. The global goal-state instance orders racing
 * deployments of one app: the newer deployment wins, an older one arriving late is recorded
 * SUPERSEDED, and a deployment the new one replaces is marked SUPERSEDED by it.
 */
export async function createDeployment(
  env: Env,
  db: Db,
  config: Config,
  actor: Actor,
  req: {
    app: string;
    buildId: number;
    strategy: Strategy;
    rollbackOf?: number;
    /** Deploy even if no connected machine of a target region is placed (they will come). */
    waitForMachines?: boolean;
  },
): Promise<DeploymentRow> {
  const app = await db.query.applications.findFirst({ where: eq(applications.name, req.app) });
  if (!app) throw notFound("application", req.app);
  const refusal = await notDeployable(db, config, req.app, req.buildId);
  if (refusal) throw refusal;
  const regions = await targetRegions(db, config, req.app);
  if (!req.waitForMachines && req.rollbackOf === undefined) {
    const unplaced = await placementRefusal(env, regions, app.placement);
    if (unplaced) throw unplaced;
  }
  const rollout = initialRollout(req.strategy, regions);
  const [rows] = await db.batch([
    db
      .insert(deployments)
      .values({
        app: req.app,
        buildId: req.buildId,
        strategy: req.strategy,
        rollout,
        status: "ROLLING",
        rollbackOf: req.rollbackOf ?? null,
        createdBy: actor.actor,
        reason: "setting the goal",
      })
      .returning(),
    auditInsert(db, actor, {
      action: req.rollbackOf ? "deployment.rollback" : "deployment.create",
      target: sql`'deployment:' || last_insert_rowid()`,
      details: {
        app: req.app,
        build_id: req.buildId,
        strategy: req.strategy,
        rollback_of: req.rollbackOf ?? null,
      },
    }),
  ]);
  const row = rows[0]!;
  try {
    // The rollout's first step sets the first wave's goal (every region, for all-at-once).
    await rolloutStub(env, row.id).start(row.id);
  } catch (err) {
    log.error("deployment:start-failed", { deployment_id: row.id, error: String(err) });
    throw new ApiError(
      503,
      "goal_unavailable",
      `deployment ${row.id} is recorded but its goal could not be set yet; it retries by itself`,
      undefined,
      {
        cause: err,
      },
    );
  }
  return (await db.query.deployments.findFirst({ where: eq(deployments.id, row.id) }))!;
}
