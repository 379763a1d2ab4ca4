import { and, eq, inArray } from "drizzle-orm";
import { type Actor, auditInsert } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { builds, nowMs } from "../db/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import type { BuildRow } from "./build-view.ts";

/**
 * Cancels a QUEUED or RUNNING build → FAILED(canceled). A running worker learns it from its
 * next heartbeat (409 build_canceled). Canceling a canceled build is a no-op; any other
 * finished build is 409.
 */
export async function cancel(db: Db, actor: Actor, id: number): Promise<BuildRow> {
  const [rows] = await db.batch([
    db
      .update(builds)
      .set({
        status: "FAILED",
        failureReason: "canceled",
        failureMessage: `canceled by ${actor.actor}`,
        finishedAt: nowMs,
        leaseExpiresAt: null,
      })
      .where(and(eq(builds.id, id), inArray(builds.status, ["QUEUED", "RUNNING"])))
      .returning(),
    auditInsert(db, actor, { action: "build.cancel", target: `build:${id}`, onlyIfChanged: true }),
  ]);
  if (rows[0]) return rows[0];
  const b = await db.query.builds.findFirst({ where: eq(builds.id, id) });
  if (!b) throw notFound("build", id);
  if (b.status === "FAILED" && b.failureReason === "canceled") return b;
  throw new ApiError(
    409,
    "already_finished",
    `build ${id} already ended ${b.status}; nothing to cancel`,
    {
      status: b.status,
      failure_reason: b.failureReason,
    },
  );
}
