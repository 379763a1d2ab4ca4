import type { ReplicationMessage } from "./replication/message.ts";

/** The Worker's bindings, as wrangler.toml and .dev.vars declare them. */
export interface Env {
  REGIONS?: string;
  LIBSQL_URL?: string;
  LIBSQL_AUTH_TOKEN?: string;
  LOG_LEVEL?: string;
  SIGNING_KEY?: string;
  /** Tests only: the public half of SIGNING_KEY, to check what the Worker publishes. */
  TEST_SIGNING_PUBLIC_KEY?: string;
  TOKEN_PEPPER?: string;
  LEASE_MS?: string;
  BUILD_TIMEOUT_MS?: string;
  MAX_ATTEMPTS?: string;
  GOAL_STATE: DurableObjectNamespace;
  REPLICATION_QUEUE: Queue<ReplicationMessage>;
  QUEUE_TICKER: DurableObjectNamespace;
  ROLLOUT: DurableObjectNamespace;
  API_RATE?: RateLimit;
  WORKER_RATE?: RateLimit;
  /** Secret agents present to enroll (POST /v1/agents/enroll); nothing else accepts it. */
  ENROLLMENT_SECRET?: string;
  [bucket: `BUCKET_${string}`]: R2Bucket;
}
