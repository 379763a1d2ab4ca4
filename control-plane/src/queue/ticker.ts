import { DurableObject } from "cloudflare:workers";
import { parseConfig } from "../config.ts";
import { openDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { log } from "../log.ts";
import { resumeReplication } from "../replication/resume.ts";
import { reap } from "./reap.ts";

/** Cron fires once a minute; the alarm runs the reaper in between so a dead worker's build is requeued within lease + 15 s. */
export const TICK_MS = 15_000;

/**
 * One instance (`queue`) whose alarm re-arms itself every TICK_MS and runs the reaper. The cron
 * trigger calls `ensureTicking()` each minute, so a lost alarm heals within a minute.
 */
export class QueueTicker extends DurableObject<Env> {
  async ensureTicking(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now() + TICK_MS);
    }
  }

  override async alarm(): Promise<void> {
    // Re-arm first: a reaper failure must not stop the ticking.
    await this.ctx.storage.setAlarm(Date.now() + TICK_MS);
    const config = parseConfig(this.env);
    const db = openDb(config);
    const result = await reap(db);
    const n = result.timedOut.length + result.requeued.length + result.lost.length;
    if (n > 0) log.info("queue:reaped", { source: "alarm", ...result });
    const replication = await resumeReplication(this.env, db, config);
    if (replication.planned + replication.resent > 0) log.info("replication:resumed", replication);
  }
}

export function tickerStub(env: Env) {
  return env.QUEUE_TICKER.get(
    env.QUEUE_TICKER.idFromName("queue"),
  ) as unknown as DurableObjectStub<QueueTicker>;
}
