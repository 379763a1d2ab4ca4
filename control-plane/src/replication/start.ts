import { eq } from "drizzle-orm";
import type { Manifest } from "../../../protocol/manifest.ts";
import { bucketFor, manifestKey, signatureKey } from "../artifacts/buckets.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { applications } from "../db/schema.ts";
import type { Env } from "../env.ts";
import { log } from "../log.ts";
import { planReplication } from "./plan.ts";

/** Target regions of an app, limited to the regions this deployment knows. */
export async function targetRegions(db: Db, config: Config, app: string): Promise<string[]> {
  const row = await db.query.applications.findFirst({
    where: eq(applications.name, app),
    columns: { regions: true },
  });
  const wanted = row?.regions ?? config.regions;
  return config.regions.filter((r) => wanted.includes(r));
}

/**
 * Starts replicating a SUCCEEDED build: copies its signed manifest into every target region's
 * bucket (small), plans the chunk batches and enqueues them. Safe to call again (cron does, for
 * any SUCCEEDED build left without a plan).
 */
export async function startReplication(
  env: Env,
  db: Db,
  config: Config,
  manifest: Manifest,
): Promise<number> {
  const primary = config.regions[0]!;
  const regions = await targetRegions(db, config, manifest.app);
  const source = bucketFor(env, primary);
  const [body, sig] = await Promise.all([
    source.get(manifestKey(manifest.build_id)).then((o) => o?.arrayBuffer()),
    source.get(signatureKey(manifest.build_id)).then((o) => o?.text()),
  ]);
  if (!body || !sig)
    throw new Error(`manifest of build ${manifest.build_id} is missing from ${primary}`);
  for (const region of regions) {
    if (region === primary) continue;
    const target = bucketFor(env, region);
    await target.put(manifestKey(manifest.build_id), body, {
      httpMetadata: { contentType: "application/json" },
    });
    await target.put(signatureKey(manifest.build_id), sig);
  }
  const messages = await planReplication(db, { manifest, primary, regions });
  for (let i = 0; i < messages.length; i += 100) {
    await env.REPLICATION_QUEUE.sendBatch(messages.slice(i, i + 100).map((body) => ({ body })));
  }
  log.info("replication:planned", {
    build_id: manifest.build_id,
    regions,
    messages: messages.length,
  });
  return messages.length;
}
