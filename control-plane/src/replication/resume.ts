import { and, eq, lt, sql } from "drizzle-orm";
import { decodeManifest } from "../../../protocol/manifest.ts";
import { bucketFor, manifestKey } from "../artifacts/buckets.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { applications, builds, nowMs, replicationBatches, replications } from "../db/schema.ts";
import type { Env } from "../env.ts";
import type { ReplicationMessage } from "./message.ts";
import { startReplication } from "./start.ts";

/** A pending batch untouched this long lost its message (or its consumer): send it again. */
const STALLED_MS = 5 * 60_000;

async function send(env: Env, messages: ReplicationMessage[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 100) {
    await env.REPLICATION_QUEUE.sendBatch(messages.slice(i, i + 100).map((body) => ({ body })));
  }
}

/**
 * Cron's half of replication: plans builds that SUCCEEDED without a plan (the completing
 * request died in between) and re-sends batches whose message was lost. Nothing accepted is
 * left behind.
 */
export async function resumeReplication(
  env: Env,
  db: Db,
  config: Config,
): Promise<{ planned: number; resent: number }> {
  // One statement finds the few unplanned builds among a day's thousands (app regions are
  // validated against REGIONS when the app is registered, so their count is the target count).
  const unplanned = await db.all<{ id: number }>(
    sql`SELECT b.id FROM ${builds} b JOIN ${applications} a ON a.name = b.app
        WHERE b.status = 'SUCCEEDED' AND b.finished_at > ${nowMs} - ${86_400_000}
          AND (SELECT count(*) FROM ${replications} r WHERE r.build_id = b.id) < json_array_length(a.regions)
        LIMIT 20`,
  );
  let planned = 0;
  for (const b of unplanned) {
    const object = await bucketFor(env, config.regions[0]!).get(manifestKey(b.id));
    if (!object) continue;
    await startReplication(
      env,
      db,
      config,
      decodeManifest(new Uint8Array(await object.arrayBuffer())),
    );
    planned++;
  }
  const stalled = await db
    .update(replicationBatches)
    .set({ updatedAt: nowMs })
    .where(
      and(
        eq(replicationBatches.status, "PENDING"),
        lt(replicationBatches.updatedAt, sql`${nowMs} - ${STALLED_MS}`),
      ),
    )
    .returning({
      build_id: replicationBatches.buildId,
      region: replicationBatches.region,
      seq: replicationBatches.seq,
    });
  await send(env, stalled);
  return { planned, resent: stalled.length };
}

/** Puts a build's FAILED batches (and regions) back to work; returns how many batches. */
export async function retryReplication(
  env: Env,
  db: Db,
  buildId: number,
  region?: string,
): Promise<number> {
  const scope = region
    ? and(eq(replicationBatches.buildId, buildId), eq(replicationBatches.region, region))
    : eq(replicationBatches.buildId, buildId);
  const [again] = await db.batch([
    db
      .update(replicationBatches)
      .set({ status: "PENDING", attempts: 0, error: null, updatedAt: nowMs })
      .where(and(scope, eq(replicationBatches.status, "FAILED")))
      .returning({
        build_id: replicationBatches.buildId,
        region: replicationBatches.region,
        seq: replicationBatches.seq,
      }),
    db
      .update(replications)
      .set({ status: "COPYING", error: null, updatedAt: nowMs })
      .where(
        and(
          eq(replications.buildId, buildId),
          eq(replications.status, "FAILED"),
          region ? eq(replications.region, region) : undefined,
        ),
      ),
  ]);
  await send(env, again);
  return again.length;
}
