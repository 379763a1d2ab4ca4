import { and, eq } from "drizzle-orm";
import { type Actor, auditInsert, bumpByChanges } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { builds, nowMs } from "../db/schema.ts";
import type { BuildRow } from "./build-view.ts";
import { leaseRefusal, refusalFor } from "./lease.ts";

/**
 * Marks a running build SUCCEEDED with its artifact, guarded by the lease token. Repeating the
 * call with the same lease after it succeeded returns the same build (idempotent); any other
 * token gets 409 and changes nothing.
 */
export async function complete(
  db: Db,
  actor: Actor,
  opts: { id: number; leaseToken: string; manifestDigest: string; sizeBytes: number },
): Promise<BuildRow> {
  const [rows] = await db.batch([
    db
      .update(builds)
      .set({
        status: "SUCCEEDED",
        finishedAt: nowMs,
        manifestDigest: opts.manifestDigest,
        sizeBytes: opts.sizeBytes,
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
      action: "build.complete",
      target: `build:${opts.id}`,
      details: { manifest_digest: opts.manifestDigest, size_bytes: opts.sizeBytes },
      onlyIfChanged: true,
    }),
    bumpByChanges(db, "completions"),
  ]);
  if (rows[0]) return rows[0];
  const b = await db.query.builds.findFirst({ where: eq(builds.id, opts.id) });
  if (b?.status === "SUCCEEDED" && b.leaseToken === opts.leaseToken) {
    if (b.manifestDigest === opts.manifestDigest) return b;
  }
  if (!b) throw await leaseRefusal(db, opts.id, opts.leaseToken);
  throw refusalFor(b, opts.leaseToken);
}
