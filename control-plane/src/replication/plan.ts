import { and, eq, sql } from "drizzle-orm";
import type { Manifest } from "../../../protocol/manifest.ts";
import { missingIn } from "../artifacts/accept.ts";
import type { Db } from "../db/client.ts";
import { nowMs, replicationBatches, replications } from "../db/schema.ts";
import { BATCH_CHUNKS, type ReplicationMessage } from "./message.ts";

/**
 * Plans a SUCCEEDED build's replication: for each target region, the unique chunks it lacks
 * are cut into batches (one queue message each); chunks it already holds from earlier builds
 * are counted as present and never copied. Idempotent: a region already planned is skipped.
 * Returns the messages to send.
 */
export async function planReplication(
  db: Db,
  opts: { manifest: Manifest; primary: string; regions: readonly string[] },
): Promise<ReplicationMessage[]> {
  const buildId = opts.manifest.build_id;
  const unique = new Map<string, number>();
  for (const c of opts.manifest.chunks) unique.set(c.digest, c.size);
  const chunksTotal = unique.size;
  const bytesTotal = [...unique.values()].reduce((a, b) => a + b, 0);
  const messages: ReplicationMessage[] = [];
  for (const region of opts.regions) {
    const existing = await db.query.replications.findFirst({
      where: and(eq(replications.buildId, buildId), eq(replications.region, region)),
      columns: { status: true },
    });
    if (existing) continue;
    const missing = region === opts.primary ? [] : await missingIn(db, region, [...unique.keys()]);
    const lacking = missing.map((digest) => ({ digest, size: unique.get(digest)! }));
    const lackingBytes = lacking.reduce((a, c) => a + c.size, 0);
    const batches: { seq: number; chunks: typeof lacking; bytes: number }[] = [];
    for (let i = 0; i < lacking.length; i += BATCH_CHUNKS) {
      const chunks = lacking.slice(i, i + BATCH_CHUNKS);
      batches.push({ seq: batches.length, chunks, bytes: chunks.reduce((a, c) => a + c.size, 0) });
    }
    const inserted = await db.batch([
      db
        .insert(replications)
        .values({
          buildId,
          region,
          status: batches.length === 0 ? "COMPLETE" : "PENDING",
          chunksTotal,
          bytesTotal,
          chunksPresent: chunksTotal - lacking.length,
          bytesPresent: bytesTotal - lackingBytes,
        })
        .onConflictDoNothing()
        .returning({ region: replications.region }),
      ...batches.map((b) =>
        db
          .insert(replicationBatches)
          .values({ buildId, region, seq: b.seq, chunks: b.chunks, bytes: b.bytes })
          .onConflictDoNothing(),
      ),
    ]);
    if (inserted[0].length === 0) continue; // planned concurrently by another invocation
    for (const b of batches) messages.push({ build_id: buildId, region, seq: b.seq });
  }
  return messages;
}

/** Marks a region COMPLETE once none of its batches is left; returns whether it is. */
export async function completeIfDone(db: Db, buildId: number, region: string): Promise<boolean> {
  const rows = await db
    .update(replications)
    .set({ status: "COMPLETE", error: null, updatedAt: nowMs })
    .where(
      and(
        eq(replications.buildId, buildId),
        eq(replications.region, region),
        sql`NOT EXISTS (SELECT 1 FROM ${replicationBatches} b
                        WHERE b.build_id = ${buildId} AND b.region = ${region} AND b.status != 'DONE')`,
      ),
    )
    .returning({ status: replications.status });
  return rows.length > 0;
}
