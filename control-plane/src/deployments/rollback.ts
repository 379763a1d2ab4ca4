import { and, eq, inArray } from "drizzle-orm";
import type { Actor } from "../audit.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { deployments, nowMs } from "../db/schema.ts";
import type { Env } from "../env.ts";
import { ApiError, notFound } from "../errors.ts";
import { createDeployment, type DeploymentRow } from "./create.ts";

/**
 * Rolls a deployment back: a new deployment (new, higher generation) of the build it replaced;
 * the rolled-back deployment is marked ROLLED_BACK. Agents keep previous releases, so nothing
 * is downloaded.
 */
export async function rollbackDeployment(
  env: Env,
  db: Db,
  config: Config,
  actor: Actor,
  id: number,
): Promise<DeploymentRow> {
  const d = await db.query.deployments.findFirst({ where: eq(deployments.id, id) });
  if (!d) throw notFound("deployment", id);
  if (d.previousBuildId === null) {
    throw new ApiError(
      409,
      "nothing_to_roll_back_to",
      `deployment ${id} replaced no earlier build of ${d.app}`,
    );
  }
  const row = await createDeployment(env, db, config, actor, {
    app: d.app,
    buildId: d.previousBuildId,
    strategy: { type: "all-at-once" },
    rollbackOf: id,
  });
  if (row.status !== "SUPERSEDED") {
    await db
      .update(deployments)
      .set({
        status: "ROLLED_BACK",
        reason: `rolled back by deployment ${row.id}`,
        finishedAt: d.finishedAt ?? nowMs,
      })
      .where(
        and(
          eq(deployments.id, id),
          inArray(deployments.status, ["ROLLING", "SUCCEEDED", "SUPERSEDED"]),
        ),
      );
  }
  return row;
}
