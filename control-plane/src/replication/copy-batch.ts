import { and, eq, sql } from "drizzle-orm";
import { missingIn } from "../artifacts/accept.ts";
import { chunkKey } from "../artifacts/buckets.ts";
import type { Db } from "../db/client.ts";
import { chunkReplicas, nowMs, replicationBatches, replications } from "../db/schema.ts";
import { COPY_CONCURRENCY, MAX_BATCH_ATTEMPTS, type ReplicationMessage } from "./message.ts";
import { completeIfDone } from "./plan.ts";

/** A chunk that cannot be copied however often we try (the source is gone). */
export class PermanentCopyError extends Error {
  override readonly name = "PermanentCopyError";
}

export interface CopyDeps {
  db: Db;
  source: R2Bucket;
  target: R2Bucket;
}

export type CopyOutcome =
  | { kind: "done"; copied: number; bytes: number; regionComplete: boolean }
  | { kind: "retry"; error: string; delaySeconds: number }
  | { kind: "failed"; error: string };

async function copyOne(deps: CopyDeps, digest: string): Promise<number> {
  const object = await deps.source.get(chunkKey(digest));
  if (!object) throw new PermanentCopyError(`chunk ${digest} is missing from the primary bucket`);
  // R2 re-checks the sha256 on the way in, so a corrupted copy is refused, never stored.
  const stream = object.body.pipeThrough(new FixedLengthStream(object.size));
  await deps.target.put(chunkKey(digest), stream, { sha256: digest });
  return object.size;
}

/**
 * Copies one batch of a build's chunks into a region's bucket (at most COPY_CONCURRENCY R2
 * operations in flight), records each copied chunk, and marks the batch DONE; the region turns
 * COMPLETE when its last batch is. Chunks another build copied meanwhile are skipped. A
 * transient failure asks for a retry with backoff; a permanent one, or MAX_BATCH_ATTEMPTS
 * failures, marks the batch and its region FAILED with the reason.
 */
export async function copyBatch(
  deps: CopyDeps,
  msg: ReplicationMessage,
  attempt: number,
): Promise<CopyOutcome> {
  const { db } = deps;
  const where = and(
    eq(replicationBatches.buildId, msg.build_id),
    eq(replicationBatches.region, msg.region),
    eq(replicationBatches.seq, msg.seq),
  );
  const batch = await db.query.replicationBatches.findFirst({ where });
  if (!batch)
    return {
      kind: "failed",
      error: `no batch ${msg.seq} of build ${msg.build_id} for ${msg.region}`,
    };
  if (batch.status === "DONE") {
    return {
      kind: "done",
      copied: 0,
      bytes: 0,
      regionComplete: await completeIfDone(db, msg.build_id, msg.region),
    };
  }
  await db
    .update(replications)
    .set({ status: "COPYING", updatedAt: nowMs })
    .where(
      and(
        eq(replications.buildId, msg.build_id),
        eq(replications.region, msg.region),
        eq(replications.status, "PENDING"),
      ),
    );
  try {
    const lacking = new Set(
      await missingIn(
        db,
        msg.region,
        batch.chunks.map((c) => c.digest),
      ),
    );
    const todo = batch.chunks.filter((c) => lacking.has(c.digest));
    let bytes = 0;
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const chunk = todo[next++]!;
        const copied = await copyOne(deps, chunk.digest);
        bytes += copied;
        await db
          .insert(chunkReplicas)
          .values({ digest: chunk.digest, region: msg.region })
          .onConflictDoNothing();
      }
    };
    await Promise.all(Array.from({ length: Math.min(COPY_CONCURRENCY, todo.length) }, worker));
    await db
      .update(replicationBatches)
      .set({ status: "DONE", attempts: attempt, error: null, updatedAt: nowMs })
      .where(where);
    return {
      kind: "done",
      copied: todo.length,
      bytes,
      regionComplete: await completeIfDone(db, msg.build_id, msg.region),
    };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    const permanent = err instanceof PermanentCopyError || attempt >= MAX_BATCH_ATTEMPTS;
    const reason = permanent ? `${error} (batch ${msg.seq}, attempt ${attempt})` : error;
    await db.batch([
      db
        .update(replicationBatches)
        .set({
          status: permanent ? "FAILED" : "PENDING",
          attempts: attempt,
          error: reason,
          updatedAt: nowMs,
        })
        .where(where),
      db
        .update(replications)
        .set({
          status: permanent
            ? "FAILED"
            : sql`CASE WHEN status = 'FAILED' THEN 'FAILED' ELSE 'COPYING' END`,
          error: reason,
          updatedAt: nowMs,
        })
        .where(and(eq(replications.buildId, msg.build_id), eq(replications.region, msg.region))),
    ]);
    if (permanent) return { kind: "failed", error: reason };
    return { kind: "retry", error, delaySeconds: Math.min(60, 2 ** attempt) };
  }
}
