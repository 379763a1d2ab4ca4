import { bucketFor } from "../artifacts/buckets.ts";
import { parseConfig } from "../config.ts";
import { openDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { log } from "../log.ts";
import { copyBatch } from "./copy-batch.ts";
import type { ReplicationMessage } from "./message.ts";

/** The replication queue's consumer: messages one after another, each a bounded batch. */
export async function consumeReplication(
  batch: MessageBatch<ReplicationMessage>,
  env: Env,
): Promise<void> {
  const config = parseConfig(env);
  const db = openDb(config);
  const source = bucketFor(env, config.regions[0]!);
  for (const message of batch.messages) {
    const msg = message.body;
    if (!config.regions.includes(msg.region)) {
      log.error("replication:unknown-region", { ...msg });
      message.ack();
      continue;
    }
    const outcome = await copyBatch(
      { db, source, target: bucketFor(env, msg.region) },
      msg,
      message.attempts,
    );
    if (outcome.kind === "retry") {
      log.warn("replication:retry", { ...msg, attempt: message.attempts, error: outcome.error });
      message.retry({ delaySeconds: outcome.delaySeconds });
    } else {
      if (outcome.kind === "failed")
        log.error("replication:failed", { ...msg, error: outcome.error });
      else if (outcome.regionComplete)
        log.info("replication:region-complete", { build_id: msg.build_id, region: msg.region });
      message.ack();
    }
  }
}
