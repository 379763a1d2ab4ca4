import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { buildLogs, builds, nowMs } from "../db/schema.ts";
import { leaseRefusal } from "./lease.ts";

/**
 * Appends a numbered chunk of log lines for the current attempt. One guarded INSERT: it writes
 * only while the caller holds the lease, and (build, attempt, seq) makes a retried append a no-op.
 */
export async function appendLogs(
  db: Db,
  opts: { id: number; leaseToken: string; seq: number; lines: string[] },
): Promise<{ appended: boolean }> {
  const result = await db.run(
    sql`INSERT OR IGNORE INTO ${buildLogs} (build_id, attempt, seq, ts, lines)
        SELECT id, attempt, ${opts.seq}, ${nowMs}, ${JSON.stringify(opts.lines)} FROM ${builds}
        WHERE id = ${opts.id} AND lease_token = ${opts.leaseToken} AND status = 'RUNNING'`,
  );
  if (result.rowsAffected > 0) return { appended: true };
  // Nothing written: a retry of a chunk already stored (fine) or a lost lease (409).
  const holder = await db.query.builds.findFirst({
    where: and(
      eq(builds.id, opts.id),
      eq(builds.leaseToken, opts.leaseToken),
      eq(builds.status, "RUNNING"),
    ),
    columns: { id: true },
  });
  if (holder) return { appended: false };
  throw await leaseRefusal(db, opts.id, opts.leaseToken);
}
