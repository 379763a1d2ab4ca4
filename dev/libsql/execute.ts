// Runs Hrana stream requests against one stream's connection and shapes the wire results.
// Transport-free: the HTTP layer hands in decoded requests and a stream, and gets back the
// JSON-ready results.

import type { ExecResult, SqlConnection } from "./connection.ts";
import { StreamRequestError, toWireError } from "./errors.ts";
import type {
  Batch,
  BatchCond,
  HranaVersion,
  SqlSource,
  Stmt,
  StreamRequest,
  WireBatchResult,
  WireCursorEntry,
  WireDescribeResult,
  WireStmtResult,
  WireStreamResponse,
  WireStreamResult,
} from "./protocol.ts";
import { splitStatements } from "./sql-text.ts";
import { encodeValue } from "./values.ts";

/** What a stream owns: its connection and its `store_sql` texts (scoped to the stream). */
export interface StreamState {
  readonly conn: SqlConnection;
  readonly sqlTexts: Map<number, string>;
}

export interface ExecuteOptions {
  readonly version: HranaVersion;
  readonly busyTimeoutMs: number;
}

type StepOutcome = "ok" | "error" | "skipped";

export interface PipelineOutcome {
  readonly results: WireStreamResult[];
  /** True once a `close` request ran: the caller must close the stream. */
  readonly closed: boolean;
}

/** Runs every request in order; a failing request does not stop the ones after it. */
export async function runPipeline(
  stream: StreamState,
  requests: readonly StreamRequest[],
  options: ExecuteOptions,
): Promise<PipelineOutcome> {
  const results: WireStreamResult[] = [];
  let closed = false;
  for (const request of requests) {
    if (closed) {
      const error = new StreamRequestError(
        "STREAM_CLOSED",
        "The stream was closed by an earlier close request in this pipeline",
      );
      results.push({ type: "error", error: toWireError(error) });
      continue;
    }
    if (request.type === "close") {
      closed = true;
      results.push({ type: "ok", response: { type: "close" } });
      continue;
    }
    try {
      results.push({ type: "ok", response: await runRequest(stream, request, options) });
    } catch (error) {
      results.push({ type: "error", error: toWireError(error) });
    }
  }
  return { results, closed };
}

async function runRequest(
  stream: StreamState,
  request: Exclude<StreamRequest, { type: "close" }>,
  options: ExecuteOptions,
): Promise<WireStreamResponse> {
  switch (request.type) {
    case "execute":
      return { type: "execute", result: await executeStmt(stream, request.stmt, options) };
    case "batch":
      return { type: "batch", result: await executeBatch(stream, request.batch, options) };
    case "sequence":
      await executeSequence(stream, resolveSql(stream, request.source), options);
      return { type: "sequence" };
    case "describe":
      return { type: "describe", result: describe(stream, request.source) };
    case "store_sql":
      if (stream.sqlTexts.has(request.sqlId)) {
        throw new StreamRequestError(
          "SQL_EXISTS",
          `SQL text id ${request.sqlId} is already stored on this stream; close_sql it first`,
        );
      }
      stream.sqlTexts.set(request.sqlId, request.sql);
      return { type: "store_sql" };
    case "close_sql":
      stream.sqlTexts.delete(request.sqlId);
      return { type: "close_sql" };
    case "get_autocommit":
      return { type: "get_autocommit", is_autocommit: stream.conn.isAutocommit };
  }
}

function resolveSql(stream: StreamState, source: SqlSource): string {
  if ("sql" in source) return source.sql;
  const sql = stream.sqlTexts.get(source.sqlId);
  if (sql === undefined) {
    throw new StreamRequestError(
      "SQL_NOT_FOUND",
      `No SQL text with id ${source.sqlId} is stored on this stream (store_sql it first)`,
    );
  }
  return sql;
}

/** A statement request must hold exactly one statement: the engine would drop the rest. */
function requireSingleStatement(sql: string): void {
  const count = splitStatements(sql).length;
  if (count === 0) {
    throw new StreamRequestError("SQL_NO_STATEMENT", "The SQL text holds no statement");
  }
  if (count > 1) {
    throw new StreamRequestError(
      "SQL_MANY_STATEMENTS",
      `The SQL text holds ${count} statements; execute takes one (use sequence for scripts)`,
    );
  }
}

async function executeStmt(
  stream: StreamState,
  stmt: Stmt,
  options: ExecuteOptions,
): Promise<WireStmtResult> {
  const sql = resolveSql(stream, stmt.source);
  requireSingleStatement(sql);
  const started = performance.now();
  const result = await stream.conn.execute(sql, stmt.args, stmt.namedArgs, options);
  return toWireResult(result, {
    wantRows: stmt.wantRows,
    durationMs: options.version >= 3 ? performance.now() - started : undefined,
  });
}

function toWireResult(
  result: ExecResult,
  shape: { wantRows: boolean; durationMs: number | undefined },
): WireStmtResult {
  const wire: WireStmtResult = {
    cols: result.cols.map((c) => ({ name: c.name, decltype: c.decltype })),
    rows: shape.wantRows ? result.rows.map((row) => row.map(encodeValue)) : [],
    affected_row_count: result.affectedRowCount,
    last_insert_rowid: result.lastInsertRowid.toString(),
  };
  if (shape.durationMs !== undefined) wire.query_duration_ms = shape.durationMs;
  return wire;
}

export async function executeBatch(
  stream: StreamState,
  batch: Batch,
  options: ExecuteOptions,
): Promise<WireBatchResult> {
  const result: WireBatchResult = { step_results: [], step_errors: [] };
  const outcomes: StepOutcome[] = [];
  for (const step of batch.steps) {
    if (step.condition !== null && !evaluate(step.condition, outcomes, stream.conn)) {
      result.step_results.push(null);
      result.step_errors.push(null);
      outcomes.push("skipped");
      continue;
    }
    try {
      result.step_results.push(await executeStmt(stream, step.stmt, options));
      result.step_errors.push(null);
      outcomes.push("ok");
    } catch (error) {
      result.step_results.push(null);
      result.step_errors.push(toWireError(error));
      outcomes.push("error");
    }
  }
  return result;
}

function evaluate(cond: BatchCond, outcomes: readonly StepOutcome[], conn: SqlConnection): boolean {
  switch (cond.type) {
    case "ok":
      return outcomes[cond.step] === "ok";
    case "error":
      return outcomes[cond.step] === "error";
    case "not":
      return !evaluate(cond.cond, outcomes, conn);
    case "and":
      return cond.conds.every((c) => evaluate(c, outcomes, conn));
    case "or":
      return cond.conds.some((c) => evaluate(c, outcomes, conn));
    case "is_autocommit":
      return conn.isAutocommit;
  }
}

async function executeSequence(
  stream: StreamState,
  sql: string,
  options: ExecuteOptions,
): Promise<void> {
  // One statement at a time, so a SQLITE_BUSY retry never re-runs statements that already
  // took effect; the first failure stops the sequence, as the spec says.
  for (const statement of splitStatements(sql)) {
    await stream.conn.execute(statement, [], [], options);
  }
}

function describe(stream: StreamState, source: SqlSource): WireDescribeResult {
  const sql = resolveSql(stream, source);
  requireSingleStatement(sql);
  const info = stream.conn.describe(sql);
  return {
    params: info.params.map((name) => ({ name })),
    cols: info.cols.map((c) => ({ name: c.name, decltype: c.decltype })),
    is_explain: info.isExplain,
    is_readonly: info.isReadonly,
  };
}

/** The cursor form of a batch result: what `POST /v3/cursor` streams, one entry per line. */
export function cursorEntries(result: WireBatchResult): WireCursorEntry[] {
  const entries: WireCursorEntry[] = [];
  result.step_results.forEach((stepResult, step) => {
    const stepError = result.step_errors[step];
    if (stepError) {
      entries.push({ type: "step_error", step, error: stepError });
    } else if (stepResult) {
      entries.push({ type: "step_begin", step, cols: stepResult.cols });
      for (const row of stepResult.rows) entries.push({ type: "row", row });
      entries.push({
        type: "step_end",
        affected_row_count: stepResult.affected_row_count,
        last_insert_rowid: stepResult.last_insert_rowid,
      });
    }
  });
  return entries;
}
