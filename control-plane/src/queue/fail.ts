import { and, eq, sql } from "drizzle-orm";
import { type Actor, auditInsert, bumpByChanges } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { builds, type FailureReason, nowMs } from "../db/schema.ts";
import type { BuildRow } from "./build-view.ts";
import { leaseRefusal, refusalFor } from "./lease.ts";

/** What a worker may report. `infrastructure` (lost disk, network) is retried; the rest are final. */
export type WorkerFailure = Exclude<FailureReason, "lost" | "canceled"> | "infrastructure";

/** First retry after 5 s, doubling per attempt, at most 5 min. */
const backoffMs = sql`min(300000, 5000 << (attempt - 1))`;

/**
 * Ends the caller's attempt, guarded by the lease token. A build failure is final; an
 * infrastructure failure goes back to the front of the queue after a backoff while attempts
 * remain, else FAILED(lost). Repeating the call with the same lease is idempotent.
 */
export async function fail(
  db: Db,
  actor: Actor,
  opts: { id: number; leaseToken: string; reason: WorkerFailure; message: string },
): Promise<BuildRow> {
  const retry = opts.reason === "infrastructure";
  const requeue = retry ? sql`attempt < max_attempts` : sql`0`;
  const finalReason = retry ? "lost" : opts.reason;
  const [rows] = await db.batch([
    db
      .update(builds)
      .set({
        status: sql`CASE WHEN ${requeue} THEN 'QUEUED' ELSE 'FAILED' END`,
        failureReason: sql`CASE WHEN ${requeue} THEN NULL ELSE ${finalReason} END`,
        failureMessage: opts.message,
        finishedAt: sql`CASE WHEN ${requeue} THEN NULL ELSE ${nowMs} END`,
        runAfter: sql`CASE WHEN ${requeue} THEN ${nowMs} + ${backoffMs} ELSE run_after END`,
        leaseExpiresAt: null,
      })
      .where(
        and(
          eq(builds.id, opts.id),
          eq(builds.leaseToken, opts.leaseToken),
          eq(builds.status, "RUNNING"),
        ),
      )
      .returning(),
    auditInsert(db, actor, {
      action: "build.fail",
      target: `build:${opts.id}`,
      details: { reason: opts.reason, message: opts.message.slice(0, 500) },
      onlyIfChanged: true,
    }),
    bumpByChanges(db, "worker_failures"),
  ]);
  if (rows[0]) return rows[0];
  const b = await db.query.builds.findFirst({ where: eq(builds.id, opts.id) });
  if (!b) throw await leaseRefusal(db, opts.id, opts.leaseToken);
  // The same call again after it took effect: the lease still names this attempt.
  const replay =
    b.leaseToken === opts.leaseToken &&
    b.failureMessage === opts.message &&
    (b.status === "QUEUED" || (b.status === "FAILED" && b.failureReason === finalReason));
  if (replay) return b;
  throw refusalFor(b, opts.leaseToken);
}
