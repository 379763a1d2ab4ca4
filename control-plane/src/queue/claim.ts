import { sql } from "drizzle-orm";
import { type Actor, auditInsert, bumpByChanges } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { applications, builds, nowMs } from "../db/schema.ts";
import type { BuildRow } from "./build-view.ts";

function leaseToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Hands the oldest eligible QUEUED build to `workerId`: one UPDATE whose subquery picks the
 * head of the queue, so no two claimers can get the same attempt (SQLite runs one writer at a
 * time, and the outer `status = 'QUEUED'` re-checks the row it changes). The order is
 * (created_at, id), served by builds_status_created_idx; a requeued build keeps its
 * created_at and so goes back to the front. bench/queue measures this against the two-step
 * SELECT-then-UPDATE and against the same claim without a matching index.
 */
export async function claim(
  db: Db,
  actor: Actor,
  opts: { workerId: string; leaseMs: number },
): Promise<{ build: BuildRow; app: typeof applications.$inferSelect | undefined } | undefined> {
  const token = leaseToken();
  const [claimed, , , apps] = await db.batch([
    db
      .update(builds)
      .set({
        status: "RUNNING",
        workerId: opts.workerId,
        attempt: sql`attempt + 1`,
        leaseToken: token,
        startedAt: nowMs,
        lastHeartbeat: nowMs,
        leaseExpiresAt: sql`${nowMs} + ${opts.leaseMs}`,
        finishedAt: null,
      })
      .where(
        sql`id = (SELECT id FROM ${builds}
                  WHERE status = 'QUEUED' AND run_after <= ${nowMs}
                  ORDER BY created_at, id LIMIT 1)
            AND status = 'QUEUED'`,
      )
      .returning(),
    auditInsert(db, actor, {
      action: "build.claim",
      target: sql`(SELECT 'build:' || id FROM ${builds} WHERE lease_token = ${token})`,
      details: { worker_id: opts.workerId },
      onlyIfChanged: true,
    }),
    bumpByChanges(db, "claims"),
    // The worker needs the app's build settings: read them in the same round trip.
    db
      .select()
      .from(applications)
      .where(sql`name = (SELECT app FROM ${builds} WHERE lease_token = ${token})`),
  ]);
  const build = claimed[0];
  return build ? { build, app: apps[0] } : undefined;
}
