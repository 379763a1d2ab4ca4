import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { builds, nowMs } from "../db/schema.ts";
import { leaseRefusal } from "./lease.ts";

/** Extends a running build's lease; refused (409) when the token is not the current lease. */
export async function heartbeat(
  db: Db,
  opts: { id: number; leaseToken: string; leaseMs: number },
): Promise<{ leaseExpiresAt: number }> {
  const [row] = await db
    .update(builds)
    .set({ lastHeartbeat: nowMs, leaseExpiresAt: sql`${nowMs} + ${opts.leaseMs}` })
    .where(
      and(
        eq(builds.id, opts.id),
        eq(builds.leaseToken, opts.leaseToken),
        eq(builds.status, "RUNNING"),
      ),
    )
    .returning({ leaseExpiresAt: builds.leaseExpiresAt });
  if (!row?.leaseExpiresAt) throw await leaseRefusal(db, opts.id, opts.leaseToken);
  return { leaseExpiresAt: row.leaseExpiresAt };
}
