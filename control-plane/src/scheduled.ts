import { parseConfig } from "./config.ts";
import { openDb } from "./db/client.ts";
import type { Env } from "./env.ts";
import { log } from "./log.ts";
import { reap } from "./queue/reap.ts";
import { tickerStub } from "./queue/ticker.ts";
import { resumeReplication } from "./replication/resume.ts";

/** The cron trigger (every minute): reap now, and make sure the sub-minute ticker is armed. */
export async function runScheduled(env: Env, scheduledTime: number): Promise<void> {
  const config = parseConfig(env);
  const db = openDb(config);
  const result = await reap(db);
  const n = result.timedOut.length + result.requeued.length + result.lost.length;
  if (n > 0) log.info("queue:reaped", { source: "cron", scheduled_time: scheduledTime, ...result });
  await tickerStub(env).ensureTicking();
  const replication = await resumeReplication(env, db, config);
  if (replication.planned + replication.resent > 0) log.info("replication:resumed", replication);
}
