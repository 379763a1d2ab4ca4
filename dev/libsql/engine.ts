// Helpers around the `libsql` binding that hold no connection state: error conversion and
// what we read from EXPLAIN listings (the binding exposes neither parameter names nor
// sqlite3_stmt_readonly()).

import type Database from "libsql";
import { SqlError } from "./errors.ts";
import { explainedStatement } from "./sql-text.ts";

export type Db = Database.Database;
export type Statement = ReturnType<Db["prepare"]>;
type ExplainRow = [number, string, number, number, number, string | null, number, unknown];

// Primary result codes; extended codes carry the primary one in their low byte.
const PRIMARY_CODES: Record<number, string> = {
  1: "SQLITE_ERROR",
  2: "SQLITE_INTERNAL",
  3: "SQLITE_PERM",
  4: "SQLITE_ABORT",
  5: "SQLITE_BUSY",
  6: "SQLITE_LOCKED",
  7: "SQLITE_NOMEM",
  8: "SQLITE_READONLY",
  9: "SQLITE_INTERRUPT",
  10: "SQLITE_IOERR",
  11: "SQLITE_CORRUPT",
  12: "SQLITE_NOTFOUND",
  13: "SQLITE_FULL",
  14: "SQLITE_CANTOPEN",
  15: "SQLITE_PROTOCOL",
  16: "SQLITE_EMPTY",
  17: "SQLITE_SCHEMA",
  18: "SQLITE_TOOBIG",
  19: "SQLITE_CONSTRAINT",
  20: "SQLITE_MISMATCH",
  21: "SQLITE_MISUSE",
  22: "SQLITE_NOLFS",
  23: "SQLITE_AUTH",
  24: "SQLITE_FORMAT",
  25: "SQLITE_RANGE",
  26: "SQLITE_NOTADB",
  27: "SQLITE_NOTICE",
  28: "SQLITE_WARNING",
};

// Opcodes that make sqlite3_stmt_readonly() false besides a write OP_Transaction (vdbeaux.c).
const WRITING_OPCODES = new Set([
  "Vacuum",
  "JournalMode",
  "Checkpoint",
  "VUpdate",
  "VCreate",
  "VDestroy",
]);

/** Converts the binding's SqliteError into ours; other errors are bugs and pass through. */
export function engineError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const { code, rawCode } = error as Error & { code?: unknown; rawCode?: unknown };
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return error;
  const primary = typeof rawCode === "number" ? PRIMARY_CODES[rawCode & 0xff] : undefined;
  return new SqlError(primary ?? code, code, error.message, { cause: error });
}

/** Runs a binding call, converting engine failures into SqlError. */
export function engine<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw engineError(error);
  }
}

/**
 * Reads an EXPLAIN listing fully, then resets the statement. SQLite counts an EXPLAIN
 * statement as active until it is reset, even after its last row, and an EXPLAIN of a write
 * counts as an active writer: while it lingers (the binding resets only on the next run or
 * when garbage collection finalizes it) autocommit writes on the same connection are never
 * committed and keep the write lock (measured with libsql 0.5.29). get() resets when done,
 * and on an EXPLAIN it executes nothing.
 */
export function allExplainRows(stmt: Statement, args: unknown[]): unknown[][] {
  const rows = stmt.all(args) as unknown[][];
  stmt.get(args);
  return rows;
}

export function listProgram(db: Db, sql: string): ExplainRow[] {
  const explain = db.prepare(`EXPLAIN ${explainedStatement(sql) ?? sql}`);
  explain.raw(true);
  return allExplainRows(explain, []) as ExplainRow[];
}

/**
 * Parameter names by position (index 0 is parameter 1): each OP_Variable carries the
 * parameter's index in P1 and its name in P4 (null for a bare `?`).
 */
export function parameterNames(program: readonly ExplainRow[]): (string | null)[] {
  const names: (string | null)[] = [];
  for (const [, opcode, p1, , , p4] of program) {
    if (opcode !== "Variable") continue;
    while (names.length < p1) names.push(null);
    names[p1 - 1] = p4;
  }
  return names;
}

export function programWrites(program: readonly ExplainRow[]): boolean {
  return program.some(
    ([, opcode, , p2]) => (opcode === "Transaction" && p2 !== 0) || WRITING_OPCODES.has(opcode),
  );
}

// The mapping depends on the SQL text alone, so one cache serves every connection.
const parameterNamesCache = new Map<string, (string | null)[]>();
const PARAMETER_CACHE_LIMIT = 512;

export function cachedParameterNames(db: Db, sql: string): (string | null)[] {
  let names = parameterNamesCache.get(sql);
  if (names === undefined) {
    names = parameterNames(listProgram(db, sql));
    if (parameterNamesCache.size >= PARAMETER_CACHE_LIMIT) parameterNamesCache.clear();
    parameterNamesCache.set(sql, names);
  }
  return names;
}
