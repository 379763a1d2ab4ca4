import type { builds } from "../db/schema.ts";

export type BuildRow = typeof builds.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A build as the API shows it: snake_case, ISO timestamps, no lease token. */
export function buildView(b: BuildRow) {
  return {
    id: b.id,
    app: b.app,
    commit_sha: b.commitSha,
    status: b.status,
    failure_reason: b.failureReason,
    failure_message: b.failureMessage,
    attempt: b.attempt,
    max_attempts: b.maxAttempts,
    timeout_ms: b.timeoutMs,
    created_at: iso(b.createdAt)!,
    started_at: iso(b.startedAt),
    finished_at: iso(b.finishedAt),
    run_after: b.runAfter > b.createdAt ? iso(b.runAfter) : null,
    worker_id: b.workerId,
    last_heartbeat: iso(b.lastHeartbeat),
    lease_expires_at: iso(b.leaseExpiresAt),
    manifest_digest: b.manifestDigest,
    size_bytes: b.sizeBytes,
    created_by: b.createdBy,
  };
}

export type BuildView = ReturnType<typeof buildView>;
