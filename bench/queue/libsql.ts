// A fresh database for a run: the local libSQL server (dev/libsql) on a temp file with the
// real migrations, and the seeding done in SQL because going through the API would measure
// build creation, not claiming.

import { migrateDatabase } from "../../dev/migrate.ts";
import { HEAD_OF_QUEUE, type SqlClient } from "./claim-sql.ts";
import type { Processes } from "./processes.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
export const BENCH_APP = "bench";
/** created_by of the rows a run claims; history rows are marked apart so counts skip them. */
const QUEUED_MARK = "bench-queued";

/** Starts dev/libsql on `file` (a free port), applies drizzle/ migrations, returns its URL. */
export async function startLibsql(procs: Processes, file: string): Promise<string> {
  const proc = await procs.start("libsql", Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      `${REPO_ROOT}dev/libsql/main.ts`,
      "--port",
      "0",
      "--file",
      file,
    ],
    cwd: REPO_ROOT,
    ready: /libsql:listening/,
  });
  const url = (JSON.parse(proc.readyLine) as { url: string }).url;
  await migrateDatabase(url);
  return url;
}

/**
 * Empties the queue and inserts `history` finished builds (older) and `queued` QUEUED ones,
 * one statement each (a recursive CTE), so 100k rows take about a second, not minutes.
 */
export async function seedQueue(
  client: SqlClient,
  opts: { queued: number; history?: number },
): Promise<void> {
  const base = Date.now() - 10 * 86_400_000;
  const insert = (status: string, count: number, from: number, mark: string) => ({
    sql: `INSERT INTO builds (app, commit_sha, status, created_at, run_after, attempt,
            max_attempts, timeout_ms, created_by)
          WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
          SELECT ?, printf('%040x', i + ?), ?, ? + i, 0, ?, 3, 1200000, ? FROM n`,
    args: [count, BENCH_APP, from, status, base + from, status === "QUEUED" ? 0 : 1, mark],
  });
  const history = opts.history ?? 0;
  await client.batch(
    [
      "DELETE FROM builds",
      "DELETE FROM audit_log",
      "DELETE FROM counters",
      {
        sql: `INSERT OR IGNORE INTO applications (name, repo_url, build_command, artifact_path,
              run_command, regions) VALUES (?, 'https://example.invalid/bench.git', 'true',
              'out/app', './app', '["us-east"]')`,
        args: [BENCH_APP],
      },
      ...(history > 0 ? [insert("SUCCEEDED", history, 0, "bench-history")] : []),
      insert("QUEUED", opts.queued, history, QUEUED_MARK),
    ],
    "write",
  );
}

/** Builds of this seed that the database no longer has QUEUED (claimed by someone). */
export async function countTaken(client: SqlClient): Promise<number> {
  const rs = await client.execute({
    sql: "SELECT count(*) AS n FROM builds WHERE created_by = ? AND status <> 'QUEUED'",
    args: [QUEUED_MARK],
  });
  return Number(rs.rows[0]?.n ?? 0);
}

/** The planner's choice for the claim's subquery, one line (EXPLAIN QUERY PLAN). */
export async function claimPlan(client: SqlClient): Promise<string> {
  const rs = await client.execute(`EXPLAIN QUERY PLAN ${HEAD_OF_QUEUE}`);
  return rs.rows.map((r) => String(r.detail)).join("; ");
}

/**
 * Index layouts for the large-queue table, applied in order to one database. Dropping ours
 * leaves builds_status_lease_idx, which still serves `status = 'QUEUED'` but not the order;
 * then an index that serves the order but not the filter; then nothing.
 */
export const INDEX_LAYOUTS: readonly { name: string; ddl: readonly string[] }[] = [
  { name: "(status, created_at, id): ours", ddl: [] },
  {
    name: "ours dropped; (status, lease_expires_at) left",
    ddl: ["DROP INDEX IF EXISTS builds_status_created_idx"],
  },
  {
    name: "(created_at) only",
    ddl: [
      "DROP INDEX IF EXISTS builds_status_lease_idx",
      "CREATE INDEX bench_created_idx ON builds (created_at)",
    ],
  },
  { name: "none", ddl: ["DROP INDEX IF EXISTS bench_created_idx"] },
];
