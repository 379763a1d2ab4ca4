import { and, eq, lt, sql } from "drizzle-orm";
import { bumpByChanges } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { auditLog, builds, nowMs } from "../db/schema.ts";

export interface ReapResult {
  timedOut: number[];
  requeued: number[];
  lost: number[];
}

/**
 * The reaper, run by the cron trigger and by the QueueTicker's alarm: a RUNNING build past its
 * timeout is FAILED(timeout); one whose lease expired (its worker stopped heartbeating) goes
 * back to QUEUED, keeping created_at so it is next in line, while attempts remain, else
 * FAILED(lost). One batch, so a build is handled by exactly one of the three.
 */
export async function reap(db: Db): Promise<ReapResult> {
  const running = eq(builds.status, "RUNNING");
  const expired = lt(builds.leaseExpiresAt, nowMs);
  const [timedOut, , requeued, , lost] = await db.batch([
    db
      .update(builds)
      .set({
        status: "FAILED",
        failureReason: "timeout",
        failureMessage: sql`'ran longer than ' || (timeout_ms / 1000) || ' s'`,
        finishedAt: nowMs,
        leaseExpiresAt: null,
      })
      .where(and(running, sql`started_at + timeout_ms < ${nowMs}`))
      .returning({ id: builds.id }),
    bumpByChanges(db, "timeouts"),
    db
      .update(builds)
      .set({
        status: "QUEUED",
        failureMessage: sql`'attempt ' || attempt || ' lost: worker ' || coalesce(worker_id, '?') || ' stopped heartbeating'`,
        leaseExpiresAt: null,
      })
      .where(and(running, expired, sql`attempt < max_attempts`))
      .returning({ id: builds.id }),
    bumpByChanges(db, "reaps"),
    db
      .update(builds)
      .set({
        status: "FAILED",
        failureReason: "lost",
        failureMessage: sql`'lost after ' || attempt || ' attempts: worker ' || coalesce(worker_id, '?') || ' stopped heartbeating'`,
        finishedAt: nowMs,
        leaseExpiresAt: null,
      })
      .where(and(running, expired, sql`attempt >= max_attempts`))
      .returning({ id: builds.id }),
    bumpByChanges(db, "lost"),
  ]);
  const result: ReapResult = {
    timedOut: timedOut.map((r) => r.id),
    requeued: requeued.map((r) => r.id),
    lost: lost.map((r) => r.id),
  };
  const entries = [
    ...result.timedOut.map((id) => ({ id, action: "build.timeout" })),
    ...result.requeued.map((id) => ({ id, action: "build.requeue" })),
    ...result.lost.map((id) => ({ id, action: "build.lost" })),
  ];
  if (entries.length > 0) {
    await db.insert(auditLog).values(
      entries.map((e) => ({
        actor: "reaper",
        role: "system",
        action: e.action,
        target: `build:${e.id}`,
      })),
    );
  }
  return result;
}
