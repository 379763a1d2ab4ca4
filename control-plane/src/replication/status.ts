import { asc, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { replicationBatches, replications } from "../db/schema.ts";

export interface RegionReplication {
  region: string;
  status: "PENDING" | "COPYING" | "COMPLETE" | "FAILED";
  chunks_total: number;
  chunks_done: number;
  bytes_total: number;
  bytes_done: number;
  percent: number;
  error: string | null;
  updated_at: string;
}

/**
 * The replication-status service: per-region progress (chunks already present count as done,
 * plus every batch copied) and `deployable`, true only once every target region is COMPLETE.
 */
export async function replicationStatus(
  db: Db,
  buildId: number,
  targets: readonly string[],
): Promise<{ regions: RegionReplication[]; deployable: boolean }> {
  const [rows, done] = await db.batch([
    db
      .select()
      .from(replications)
      .where(eq(replications.buildId, buildId))
      .orderBy(asc(replications.createdAt)),
    db.all<{ region: string; chunks: number; bytes: number }>(
      sql`SELECT region, sum(json_array_length(chunks)) AS chunks, sum(bytes) AS bytes
          FROM ${replicationBatches} WHERE build_id = ${buildId} AND status = 'DONE' GROUP BY region`,
    ),
  ]);
  const regions = rows.map((r) => {
    const d = done.find((x) => x.region === r.region);
    const chunksDone =
      r.status === "COMPLETE" ? r.chunksTotal : r.chunksPresent + Number(d?.chunks ?? 0);
    const bytesDone =
      r.status === "COMPLETE" ? r.bytesTotal : r.bytesPresent + Number(d?.bytes ?? 0);
    return {
      region: r.region,
      status: r.status,
      chunks_total: r.chunksTotal,
      chunks_done: chunksDone,
      bytes_total: r.bytesTotal,
      bytes_done: bytesDone,
      percent: r.bytesTotal === 0 ? 100 : Math.floor((bytesDone / r.bytesTotal) * 1000) / 10,
      error: r.error,
      updated_at: new Date(r.updatedAt).toISOString(),
    };
  });
  // Every target region must have a row (planning may be under way) and be COMPLETE.
  const deployable = targets.every(
    (t) => regions.find((r) => r.region === t)?.status === "COMPLETE",
  );
  return { regions, deployable };
}
