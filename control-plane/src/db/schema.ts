import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Milliseconds since the epoch on the database's clock: the one clock the queue uses. */
export const nowMs = sql`(CAST(unixepoch('subsec') * 1000 AS INTEGER))`;

export const applications = sqliteTable("applications", {
  name: text().primaryKey(),
  repoUrl: text("repo_url").notNull(),
  buildCommand: text("build_command").notNull(),
  artifactPath: text("artifact_path").notNull(),
  runCommand: text("run_command").notNull(),
  /** JSON: {type:"http", path, port} | {type:"command", command} | null. */
  healthCheck: text("health_check", { mode: "json" }),
  /** JSON array of region names; the deployment's target regions. */
  regions: text({ mode: "json" }).$type<string[]>().notNull(),
  buildTimeoutMs: integer("build_timeout_ms"),
  /**
   * JSON: which machines run it (protocol/placement.ts): `{labels?, regions?: {<region>:
   * {labels}}}`; null: every machine of every region.
   */
  placement: text({ mode: "json" }).$type<AppPlacement | null>(),
  createdAt: integer("created_at").notNull().default(nowMs),
});

/** An application's placement: labels for every region, or per region (which wins). */
export interface AppPlacement {
  labels?: Record<string, string> | undefined;
  regions?: Record<string, { labels: Record<string, string> }> | undefined;
}

export const BUILD_STATUSES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];
export const FAILURE_REASONS = [
  "build_error",
  "timeout",
  "lost",
  "canceled",
  "invalid_artifact",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** The build queue. Claim order is (created_at, id): see queue/claim.ts. */
export const builds = sqliteTable(
  "builds",
  {
    id: integer().primaryKey({ autoIncrement: true }),
    app: text()
      .notNull()
      .references(() => applications.name),
    commitSha: text("commit_sha").notNull(),
    status: text().$type<BuildStatus>().notNull().default("QUEUED"),
    failureReason: text("failure_reason").$type<FailureReason>(),
    failureMessage: text("failure_message"),
    createdAt: integer("created_at").notNull().default(nowMs),
    /** A requeued infrastructure failure waits until then (backoff). */
    runAfter: integer("run_after").notNull().default(0),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    attempt: integer().notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    workerId: text("worker_id"),
    leaseToken: text("lease_token"),
    lastHeartbeat: integer("last_heartbeat"),
    leaseExpiresAt: integer("lease_expires_at"),
    manifestDigest: text("manifest_digest"),
    sizeBytes: integer("size_bytes"),
    createdBy: text("created_by"),
  },
  (t) => [
    // Matches the claim's `WHERE status='QUEUED' ... ORDER BY created_at, id` exactly, so the
    // claim reads one index entry instead of sorting the queue (bench/queue measures both).
    index("builds_status_created_idx").on(t.status, t.createdAt, t.id),
    index("builds_app_commit_idx").on(t.app, t.commitSha),
    index("builds_status_lease_idx").on(t.status, t.leaseExpiresAt),
    // The claim's audit row finds the build it just claimed by its fresh lease token.
    index("builds_lease_token_idx").on(t.leaseToken),
  ],
);

/** Build logs, kept apart from the hot queue table; (build, attempt, seq) makes appends idempotent. */
export const buildLogs = sqliteTable(
  "build_logs",
  {
    buildId: integer("build_id").notNull(),
    attempt: integer().notNull(),
    seq: integer().notNull(),
    ts: integer().notNull().default(nowMs),
    /** JSON array of lines. */
    lines: text({ mode: "json" }).$type<string[]>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.buildId, t.attempt, t.seq] })],
);

export const ROLES = ["admin", "deployer", "builder", "relay", "agent"] as const;
export type Role = (typeof ROLES)[number];

/** API tokens: only a peppered hash of the secret is stored. */
export const tokens = sqliteTable("tokens", {
  id: text().primaryKey(),
  name: text().notNull(),
  role: text().$type<Role>().notNull(),
  /** Relay and agent tokens are bound to one region. */
  region: text(),
  secretHash: text("secret_hash").notNull(),
  createdAt: integer("created_at").notNull().default(nowMs),
  createdBy: text("created_by"),
  expiresAt: integer("expires_at"),
  revokedAt: integer("revoked_at"),
});

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer().primaryKey({ autoIncrement: true }),
    ts: integer().notNull().default(nowMs),
    actor: text().notNull(),
    role: text().notNull(),
    action: text().notNull(),
    target: text(),
    details: text({ mode: "json" }),
    requestId: text("request_id"),
    ip: text(),
  },
  (t) => [index("audit_log_target_idx").on(t.target, t.id)],
);

/** Monotonic counters for /metrics (claims, reaps, failures), bumped in the same batch as the change. */
export const counters = sqliteTable("counters", {
  name: text().primaryKey(),
  value: integer().notNull().default(0),
});

/** Content-addressed chunks the system has seen (key `chunks/<digest>` in every bucket). */
export const chunks = sqliteTable("chunks", {
  digest: text().primaryKey(),
  size: integer().notNull(),
  createdAt: integer("created_at").notNull().default(nowMs),
});

/** Which region's bucket holds which chunk: written after the bucket's put succeeded. */
export const chunkReplicas = sqliteTable(
  "chunk_replicas",
  {
    digest: text().notNull(),
    region: text().notNull(),
    createdAt: integer("created_at").notNull().default(nowMs),
  },
  (t) => [primaryKey({ columns: [t.region, t.digest] })],
);

export const REPLICATION_STATUSES = ["PENDING", "COPYING", "COMPLETE", "FAILED"] as const;
export type ReplicationStatus = (typeof REPLICATION_STATUSES)[number];

/** Per (build, region) replication progress; `deployable` is derived from these rows. */
export const replications = sqliteTable(
  "replications",
  {
    buildId: integer("build_id").notNull(),
    region: text().notNull(),
    status: text().$type<ReplicationStatus>().notNull(),
    chunksTotal: integer("chunks_total").notNull(),
    bytesTotal: integer("bytes_total").notNull(),
    /** Chunks the region already held when replication began (earlier builds): never copied. */
    chunksPresent: integer("chunks_present").notNull(),
    bytesPresent: integer("bytes_present").notNull(),
    error: text(),
    createdAt: integer("created_at").notNull().default(nowMs),
    updatedAt: integer("updated_at").notNull().default(nowMs),
  },
  (t) => [primaryKey({ columns: [t.buildId, t.region] })],
);

/** One queue message's worth of copying: a bounded list of chunks for one (build, region). */
export const replicationBatches = sqliteTable(
  "replication_batches",
  {
    buildId: integer("build_id").notNull(),
    region: text().notNull(),
    seq: integer().notNull(),
    /** JSON [{digest, size}]. */
    chunks: text({ mode: "json" }).$type<{ digest: string; size: number }[]>().notNull(),
    bytes: integer().notNull(),
    status: text().$type<"PENDING" | "DONE" | "FAILED">().notNull().default("PENDING"),
    attempts: integer().notNull().default(0),
    error: text(),
    updatedAt: integer("updated_at").notNull().default(nowMs),
  },
  (t) => [
    primaryKey({ columns: [t.buildId, t.region, t.seq] }),
    index("replication_batches_status_idx").on(t.status, t.updatedAt),
  ],
);

export const DEPLOYMENT_STATUSES = [
  "ROLLING",
  "SUCCEEDED",
  "ROLLED_BACK",
  "ABORTED",
  "FAILED",
  "SUPERSEDED",
] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

export const deployments = sqliteTable(
  "deployments",
  {
    id: integer().primaryKey({ autoIncrement: true }),
    app: text()
      .notNull()
      .references(() => applications.name),
    buildId: integer("build_id").notNull(),
    previousBuildId: integer("previous_build_id"),
    /** JSON: the validated strategy ({type: "all-at-once"} | staged, step 9). */
    strategy: text({ mode: "json" }).notNull(),
    status: text().$type<DeploymentStatus>().notNull().default("ROLLING"),
    /** Why it ended as it did, or what it waits for, in plain words. */
    reason: text(),
    generation: integer(),
    /** JSON: the rollout's plan and per-wave state (deployments/rollout-core.ts). */
    rollout: text({ mode: "json" }),
    rollbackOf: integer("rollback_of"),
    supersededBy: integer("superseded_by"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull().default(nowMs),
    finishedAt: integer("finished_at"),
  },
  (t) => [
    index("deployments_app_idx").on(t.app, t.id),
    index("deployments_status_idx").on(t.status),
  ],
);
