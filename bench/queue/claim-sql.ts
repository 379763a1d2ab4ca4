// The claim strategies measured at the SQL layer, over the part of @libsql/client's Client they
// use (HTTP to the local server; embedded.ts gives the same face to the engine itself). "ours"
// copies the statements of control-plane/src/queue/claim.ts and complete.ts (drizzle builds
// the same SQL); keep them in step when those change.

import type { InStatement } from "@libsql/client";
import { randomHex } from "./stats.ts";

type Row = Readonly<Record<string, unknown>>;
export interface SqlResult {
  readonly rows: readonly Row[];
}
export interface SqlTransaction {
  execute(stmt: InStatement): Promise<SqlResult>;
  commit(): Promise<void>;
  close(): void;
}
/** What the strategies need of a client; @libsql/client's Client has it. */
export interface SqlClient {
  execute(stmt: InStatement): Promise<SqlResult>;
  batch(stmts: InStatement[], mode: "deferred" | "write"): Promise<SqlResult[]>;
  transaction(mode: "deferred"): Promise<SqlTransaction>;
  close(): void;
}

/** The database clock, as control-plane/src/db/schema.ts `nowMs` spells it. */
export const NOW = "(CAST(unixepoch('subsec') * 1000 AS INTEGER))";
const LEASE_MS = 60_000;

export interface Claimed {
  readonly id: number;
  readonly attempt: number;
  readonly token: string;
}

export interface Strategy {
  readonly name: string;
  claim(client: SqlClient, workerId: string): Promise<Claimed | undefined>;
  /** True when the store accepted the completion (the caller still held the lease). */
  complete(client: SqlClient, claimed: Claimed): Promise<boolean>;
}

/** The head of the queue, as the claim subquery and the baseline's SELECT pick it. */
export const HEAD_OF_QUEUE = `SELECT id FROM builds WHERE status = 'QUEUED' AND run_after <= ${NOW}
  ORDER BY created_at, id LIMIT 1`;

const claimStatement = (workerId: string, token: string): InStatement => ({
  sql: `UPDATE builds SET status = 'RUNNING', worker_id = ?, attempt = attempt + 1,
          lease_token = ?, started_at = ${NOW}, last_heartbeat = ${NOW},
          lease_expires_at = ${NOW} + ?, finished_at = NULL
        WHERE id = (${HEAD_OF_QUEUE}) AND status = 'QUEUED'
        RETURNING *`,
  args: [workerId, token, LEASE_MS],
});

const completeStatement = (c: Claimed): InStatement => ({
  sql: `UPDATE builds SET status = 'SUCCEEDED', finished_at = ${NOW}, manifest_digest = ?,
          size_bytes = ?
        WHERE id = ? AND lease_token = ? AND status = 'RUNNING'
        RETURNING *`,
  args: ["0".repeat(64), 1024, c.id, c.token],
});

// The audit row and counter that claim.ts and complete.ts batch with their UPDATE (audit.ts).
const auditStatement = (action: string, targetSql: string, targetArg: string): InStatement => ({
  sql: `INSERT INTO audit_log (actor, role, action, target, details, request_id, ip)
        SELECT 'bench (tok)', 'builder', ?, ${targetSql}, '{}', NULL, NULL WHERE changes() > 0`,
  args: [action, targetArg],
});
const bumpStatement = (name: string): InStatement => ({
  sql: `INSERT INTO counters (name, value) SELECT ?, changes() WHERE changes() > 0
        ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`,
  args: [name],
});

function claimedFrom(row: Row | undefined): Claimed | undefined {
  if (row === undefined) return undefined;
  return { id: Number(row.id), attempt: Number(row.attempt), token: String(row.lease_token) };
}

/** Ours: one UPDATE whose subquery picks the head; complete is one lease-guarded UPDATE. */
export const ours: Strategy = {
  name: "ours: one UPDATE … WHERE id = (SELECT …)",
  async claim(client, workerId) {
    const rs = await client.execute(claimStatement(workerId, randomHex(16)));
    return claimedFrom(rs.rows[0]);
  },
  async complete(client, c) {
    return (await client.execute(completeStatement(c))).rows.length > 0;
  },
};

/** Ours as the API runs it: each UPDATE batched with its audit row and counter bump. */
export const oursApiBatch: Strategy = {
  name: "ours + audit row + counter (as the API batches it)",
  async claim(client, workerId) {
    const token = randomHex(16);
    const [rs] = await client.batch(
      [
        claimStatement(workerId, token),
        // claim.ts names the target by the new lease token (a subquery on builds).
        auditStatement(
          "build.claim",
          "(SELECT 'build:' || id FROM builds WHERE lease_token = ?)",
          token,
        ),
        bumpStatement("claims"),
      ],
      "deferred",
    );
    return claimedFrom(rs?.rows[0]);
  },
  async complete(client, c) {
    const [rs] = await client.batch(
      [
        completeStatement(c),
        auditStatement("build.complete", "?", `build:${c.id}`),
        bumpStatement("completions"),
      ],
      "deferred",
    );
    return (rs?.rows.length ?? 0) > 0;
  },
};

// The seed's claim: read the head, then update that id. Its UPDATE does not re-check status.
const seedUpdate = (id: number, workerId: string, token: string): InStatement => ({
  sql: `UPDATE builds SET status = 'RUNNING', worker_id = ?, attempt = attempt + 1,
          lease_token = ?, started_at = ${NOW}, lease_expires_at = ${NOW} + ?
        WHERE id = ? RETURNING id, attempt, lease_token`,
  args: [workerId, token, LEASE_MS, id],
});

/** Baseline (the seed): BEGIN; SELECT the head; UPDATE … WHERE id = ?; COMMIT. */
export const seedTransaction: Strategy = {
  name: "baseline: BEGIN; SELECT head; UPDATE id; COMMIT",
  async claim(client, workerId) {
    const tx = await client.transaction("deferred");
    try {
      const head = (await tx.execute(HEAD_OF_QUEUE)).rows[0];
      if (head === undefined) return undefined;
      const rs = await tx.execute(seedUpdate(Number(head.id), workerId, randomHex(16)));
      await tx.commit();
      return claimedFrom(rs.rows[0]);
    } finally {
      tx.close();
    }
  },
  complete: ours.complete,
};

/**
 * The same two statements without a transaction: not a design anyone proposed, but the
 * check that the duplicate counter can fail (two workers read the same head).
 */
export const seedNoTransaction: Strategy = {
  name: "check: SELECT head; UPDATE id (no transaction)",
  async claim(client, workerId) {
    const head = (await client.execute(HEAD_OF_QUEUE)).rows[0];
    if (head === undefined) return undefined;
    const rs = await client.execute(seedUpdate(Number(head.id), workerId, randomHex(16)));
    return claimedFrom(rs.rows[0]);
  },
  complete: ours.complete,
};
