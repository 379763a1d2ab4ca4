import { createApp } from "./app.ts";
import type { Env } from "./env.ts";
import { consumeReplication } from "./replication/consumer.ts";
import type { ReplicationMessage } from "./replication/message.ts";
import { runScheduled } from "./scheduled.ts";

export { Rollout } from "./deployments/rollout.ts";
export { GoalState } from "./goal-state/durable-object.ts";
export { QueueTicker } from "./queue/ticker.ts";

const app = createApp();

export default {
  fetch: app.fetch,
  scheduled(controller, env, ctx) {
    ctx.waitUntil(runScheduled(env, controller.scheduledTime));
  },
  queue(batch, env) {
    return consumeReplication(batch as MessageBatch<ReplicationMessage>, env);
  },
} satisfies ExportedHandler<Env>;
