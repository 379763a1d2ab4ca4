// Hrana over HTTP with JSON encoding (versions 2 and 3): the wire shapes we send, and the
// decoded shapes the rest of the server works with. Decoding and validation live in
// decode.ts so that everything past it can trust its input.
//
// Spec: tursodatabase/libsql docs/HRANA_3_SPEC.md ("Hrana over HTTP", "Shared structures").

export type HranaVersion = 2 | 3;

/** A SQLite value as the engine adapter takes and returns it. */
export type SqlValue = null | bigint | number | string | Uint8Array;

// ---- decoded requests ----

/** The SQL text of a statement: inline, or stored earlier on the stream with `store_sql`. */
export type SqlSource = { readonly sql: string } | { readonly sqlId: number };

export interface NamedArg {
  readonly name: string;
  readonly value: SqlValue;
}

export interface Stmt {
  readonly source: SqlSource;
  readonly args: readonly SqlValue[];
  readonly namedArgs: readonly NamedArg[];
  readonly wantRows: boolean;
}

export type BatchCond =
  | { readonly type: "ok"; readonly step: number }
  | { readonly type: "error"; readonly step: number }
  | { readonly type: "not"; readonly cond: BatchCond }
  | { readonly type: "and"; readonly conds: readonly BatchCond[] }
  | { readonly type: "or"; readonly conds: readonly BatchCond[] }
  | { readonly type: "is_autocommit" };

export interface BatchStep {
  readonly condition: BatchCond | null;
  readonly stmt: Stmt;
}

export interface Batch {
  readonly steps: readonly BatchStep[];
}

export type StreamRequest =
  | { readonly type: "close" }
  | { readonly type: "execute"; readonly stmt: Stmt }
  | { readonly type: "batch"; readonly batch: Batch }
  | { readonly type: "sequence"; readonly source: SqlSource }
  | { readonly type: "describe"; readonly source: SqlSource }
  | { readonly type: "store_sql"; readonly sqlId: number; readonly sql: string }
  | { readonly type: "close_sql"; readonly sqlId: number }
  | { readonly type: "get_autocommit" };

export type StreamRequestType = StreamRequest["type"];

export interface PipelineReqBody {
  readonly baton: string | null;
  readonly requests: readonly StreamRequest[];
}

export interface CursorReqBody {
  readonly baton: string | null;
  readonly batch: Batch;
}

// ---- wire responses (JSON as sent) ----

export type WireValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

export interface WireError {
  message: string;
  code: string;
}

export interface WireCol {
  name: string | null;
  decltype: string | null;
}

export interface WireStmtResult {
  cols: WireCol[];
  rows: WireValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
  /** sqld's Hrana 3 extension; sent on /v3 only. */
  query_duration_ms?: number;
}

export interface WireBatchResult {
  step_results: (WireStmtResult | null)[];
  step_errors: (WireError | null)[];
}

export interface WireDescribeResult {
  params: { name: string | null }[];
  cols: { name: string; decltype: string | null }[];
  is_explain: boolean;
  is_readonly: boolean;
}

export type WireStreamResponse =
  | { type: "close" }
  | { type: "execute"; result: WireStmtResult }
  | { type: "batch"; result: WireBatchResult }
  | { type: "sequence" }
  | { type: "describe"; result: WireDescribeResult }
  | { type: "store_sql" }
  | { type: "close_sql" }
  | { type: "get_autocommit"; is_autocommit: boolean };

export type WireStreamResult =
  | { type: "ok"; response: WireStreamResponse }
  | { type: "error"; error: WireError };

export interface WirePipelineRespBody {
  baton: string | null;
  base_url: string | null;
  results: WireStreamResult[];
}

export type WireCursorEntry =
  | { type: "step_begin"; step: number; cols: WireCol[] }
  | { type: "step_end"; affected_row_count: number; last_insert_rowid: string | null }
  | { type: "step_error"; step: number; error: WireError }
  | { type: "row"; row: WireValue[] }
  | { type: "error"; error: WireError };
