// Validation of Hrana JSON request bodies. Everything is checked before any request of a
// pipeline runs: a pipeline we only half understand must not half execute. Unknown fields
// are ignored (the spec's forward-compatibility rule); unknown request or value types are
// rejected with the path of the offending field.

import { HranaHttpError } from "./errors.ts";
import type {
  Batch,
  BatchCond,
  BatchStep,
  CursorReqBody,
  HranaVersion,
  NamedArg,
  PipelineReqBody,
  SqlSource,
  SqlValue,
  Stmt,
  StreamRequest,
} from "./protocol.ts";
import { parseBase64, parseInt64 } from "./values.ts";

type JsonObject = Record<string, unknown>;

// Conditions nest; a hostile body could otherwise make the decoder recurse without bound.
const MAX_COND_DEPTH = 64;

function fail(path: string, problem: string): never {
  throw new HranaHttpError("BAD_REQUEST", `Invalid Hrana request: ${path} ${problem}`);
}

function object(value: unknown, path: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(path, "must be an object");
  }
  return value as JsonObject;
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, "must be an array");
  return value;
}

function string(value: unknown, path: string): string {
  if (typeof value !== "string") fail(path, "must be a string");
  return value;
}

function stringOrNull(value: unknown, path: string): string | null {
  return value === undefined || value === null ? null : string(value, path);
}

function integer(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(path, `must be an integer in [${min}, ${max}]`);
  }
  return value;
}

const int32 = (value: unknown, path: string) => integer(value, path, -(2 ** 31), 2 ** 31 - 1);
const uint32 = (value: unknown, path: string) => integer(value, path, 0, 2 ** 32 - 1);

function requireVersion3(version: HranaVersion, path: string, what: string): void {
  if (version < 3) fail(path, `is ${what}, which needs Hrana 3: use the /v3 endpoints`);
}

export function decodePipelineBody(json: unknown, version: HranaVersion): PipelineReqBody {
  const body = object(json, "body");
  return {
    baton: stringOrNull(body.baton, "baton"),
    requests: array(body.requests, "requests").map((request, i) =>
      decodeStreamRequest(request, `requests[${i}]`, version),
    ),
  };
}

export function decodeCursorBody(json: unknown): CursorReqBody {
  const body = object(json, "body");
  return {
    baton: stringOrNull(body.baton, "baton"),
    batch: decodeBatch(body.batch, "batch", 3),
  };
}

function decodeStreamRequest(json: unknown, path: string, version: HranaVersion): StreamRequest {
  const request = object(json, path);
  const type = request.type;
  switch (type) {
    case "close":
      return { type };
    case "execute":
      return { type, stmt: decodeStmt(request.stmt, `${path}.stmt`) };
    case "batch":
      return { type, batch: decodeBatch(request.batch, `${path}.batch`, version) };
    case "sequence":
    case "describe":
      return { type, source: decodeSqlSource(request, path) };
    case "store_sql":
      return {
        type,
        sqlId: int32(request.sql_id, `${path}.sql_id`),
        sql: string(request.sql, `${path}.sql`),
      };
    case "close_sql":
      return { type, sqlId: int32(request.sql_id, `${path}.sql_id`) };
    case "get_autocommit":
      requireVersion3(version, `${path}.type`, `"get_autocommit"`);
      return { type };
    default:
      fail(
        `${path}.type`,
        `is ${JSON.stringify(type)}; expected one of close, execute, batch, sequence, ` +
          "describe, store_sql, close_sql, get_autocommit (cursors are not pipeline requests)",
      );
  }
}

/** Exactly one of `sql` and `sql_id`; a `null` counts as absent. */
function decodeSqlSource(holder: JsonObject, path: string): SqlSource {
  const sql = holder.sql;
  const sqlId = holder.sql_id;
  const hasSql = sql !== undefined && sql !== null;
  const hasSqlId = sqlId !== undefined && sqlId !== null;
  if (hasSql === hasSqlId) fail(path, "must have exactly one of sql and sql_id");
  return hasSql ? { sql: string(sql, `${path}.sql`) } : { sqlId: int32(sqlId, `${path}.sql_id`) };
}

function decodeStmt(json: unknown, path: string): Stmt {
  const stmt = object(json, path);
  const wantRows = stmt.want_rows;
  if (wantRows !== undefined && wantRows !== null && typeof wantRows !== "boolean") {
    fail(`${path}.want_rows`, "must be a boolean");
  }
  const args = stmt.args ?? [];
  const namedArgs = stmt.named_args ?? [];
  return {
    source: decodeSqlSource(stmt, path),
    args: array(args, `${path}.args`).map((value, i) => decodeValue(value, `${path}.args[${i}]`)),
    namedArgs: array(namedArgs, `${path}.named_args`).map((arg, i) =>
      decodeNamedArg(arg, `${path}.named_args[${i}]`),
    ),
    wantRows: wantRows !== false,
  };
}

function decodeNamedArg(json: unknown, path: string): NamedArg {
  const arg = object(json, path);
  const name = string(arg.name, `${path}.name`);
  if (name === "") fail(`${path}.name`, "must not be empty");
  return { name, value: decodeValue(arg.value, `${path}.value`) };
}

export function decodeValue(json: unknown, path: string): SqlValue {
  const value = object(json, path);
  switch (value.type) {
    case "null":
      return null;
    case "integer": {
      const parsed = parseInt64(string(value.value, `${path}.value`));
      if (parsed === undefined) {
        fail(`${path}.value`, "must be a decimal string of a 64-bit signed integer");
      }
      return parsed;
    }
    case "float": {
      const number = value.value;
      if (typeof number !== "number") fail(`${path}.value`, "must be a JSON number");
      return number;
    }
    case "text":
      return string(value.value, `${path}.value`);
    case "blob": {
      const bytes = parseBase64(string(value.base64, `${path}.base64`));
      if (bytes === undefined) fail(`${path}.base64`, "must be standard base64");
      return bytes;
    }
    default:
      fail(
        `${path}.type`,
        `is ${JSON.stringify(value.type)}; expected null, integer, float, text or blob`,
      );
  }
}

function decodeBatch(json: unknown, path: string, version: HranaVersion): Batch {
  const batch = object(json, path);
  const steps = array(batch.steps, `${path}.steps`).map((step, i): BatchStep => {
    const stepPath = `${path}.steps[${i}]`;
    const holder = object(step, stepPath);
    const condition = holder.condition;
    return {
      condition:
        condition === undefined || condition === null
          ? null
          : decodeCond(condition, `${stepPath}.condition`, { stepIndex: i, version, depth: 0 }),
      stmt: decodeStmt(holder.stmt, `${stepPath}.stmt`),
    };
  });
  return { steps };
}

interface CondContext {
  readonly stepIndex: number;
  readonly version: HranaVersion;
  readonly depth: number;
}

function decodeCond(json: unknown, path: string, context: CondContext): BatchCond {
  if (context.depth > MAX_COND_DEPTH) fail(path, `nests deeper than ${MAX_COND_DEPTH} levels`);
  const cond = object(json, path);
  const inner = { ...context, depth: context.depth + 1 };
  const type = cond.type;
  switch (type) {
    case "ok":
    case "error": {
      const step = uint32(cond.step, `${path}.step`);
      // A condition can only look back: later steps have not run when it is evaluated.
      if (step >= context.stepIndex) {
        fail(`${path}.step`, `is ${step}; it must refer to an earlier step`);
      }
      return { type, step };
    }
    case "not":
      return { type, cond: decodeCond(cond.cond, `${path}.cond`, inner) };
    case "and":
    case "or":
      return {
        type,
        conds: array(cond.conds, `${path}.conds`).map((c, i) =>
          decodeCond(c, `${path}.conds[${i}]`, inner),
        ),
      };
    case "is_autocommit":
      requireVersion3(context.version, `${path}.type`, `"is_autocommit"`);
      return { type };
    default:
      fail(
        `${path}.type`,
        `is ${JSON.stringify(type)}; expected ok, error, not, and, or or is_autocommit`,
      );
  }
}
