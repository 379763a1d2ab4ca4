// One SQLite connection per Hrana stream, on the `libsql` binding, behind a small interface
// so the rest of the server can be driven by a fake.

import Database from "libsql";
import { retryWhileBusy } from "./busy-wait.ts";
import {
  allExplainRows,
  cachedParameterNames,
  type Db,
  engine,
  listProgram,
  parameterNames,
  programWrites,
  type Statement,
} from "./engine.ts";
import { SqlError, StreamRequestError } from "./errors.ts";
import type { NamedArg, SqlValue } from "./protocol.ts";
import { explainedStatement, isTransactionControl } from "./sql-text.ts";

export interface Column {
  readonly name: string;
  readonly decltype: string | null;
}

export interface ExecResult {
  readonly cols: readonly Column[];
  readonly rows: readonly (readonly SqlValue[])[];
  readonly affectedRowCount: number;
  readonly lastInsertRowid: bigint;
}

export interface DescribeInfo {
  readonly params: readonly (string | null)[];
  readonly cols: readonly Column[];
  readonly isExplain: boolean;
  readonly isReadonly: boolean;
}

export interface ExecuteOptions {
  /** How long to keep retrying a statement that finds the database locked. */
  readonly busyTimeoutMs: number;
}

export interface SqlConnection {
  /**
   * Runs one statement, waiting (without blocking) while the database is locked. Throws
   * SqlError for engine failures and StreamRequestError for arguments that do not fit.
   */
  execute(
    sql: string,
    args: readonly SqlValue[],
    namedArgs: readonly NamedArg[],
    options: ExecuteOptions,
  ): Promise<ExecResult>;
  describe(sql: string): DescribeInfo;
  readonly isAutocommit: boolean;
  /** Rolls back an open transaction and releases the connection; never throws. */
  close(): void;
}

export type OpenConnection = () => SqlConnection;

function nameMatches(parameter: string | null, argName: string): boolean {
  if (parameter === null) return false;
  // Clients may leave out the prefix (`id` for `:id`); the spec asks the server to guess it.
  return parameter === argName || (/^[:@$]/.test(parameter) && parameter.slice(1) === argName);
}

function closeQuietly(db: Db): void {
  try {
    if (db.inTransaction) db.exec("ROLLBACK");
  } catch {
    // Nothing more we can do; the close below still releases what it can.
  }
  try {
    db.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

class LibsqlConnection implements SqlConnection {
  readonly #openDb: () => Db;
  #db: Db;
  #counters: Statement | undefined;

  constructor(openDb: () => Db) {
    this.#openDb = openDb;
    this.#db = openDb();
  }

  get isAutocommit(): boolean {
    return !this.#db.inTransaction;
  }

  async execute(
    sql: string,
    args: readonly SqlValue[],
    namedArgs: readonly NamedArg[],
    options: ExecuteOptions,
  ): Promise<ExecResult> {
    // Retries reuse the prepared statement: the binding resets a statement only when it is
    // run again, and a statement left unreset after SQLITE_BUSY keeps its transaction open.
    let stmt: Statement | undefined;
    let bound: SqlValue[] | undefined;
    const attempt = () =>
      engine(() => {
        stmt ??= this.#db.prepare(sql);
        bound ??= namedArgs.length === 0 ? [...args] : this.#bindNamed(sql, args, namedArgs);
        return this.#run(stmt, bound, explainedStatement(sql) !== undefined);
      });
    try {
      return await retryWhileBusy(attempt, {
        timeoutMs: options.busyTimeoutMs,
        // SQLITE_BUSY_SNAPSHOT outside a transaction: the stale snapshot was the failed
        // statement's own, and the next attempt starts a fresh one.
        retryable: (error) =>
          error.isBusy || (error.extendedCode === "SQLITE_BUSY_SNAPSHOT" && this.isAutocommit),
      });
    } catch (error) {
      if (error instanceof SqlError && error.code === "SQLITE_BUSY" && stmt !== undefined) {
        throw this.#replaceAfterBusy(error);
      }
      throw error;
    }
  }

  describe(sql: string): DescribeInfo {
    return engine(() => {
      const program = listProgram(this.#db, sql);
      const isExplain = explainedStatement(sql) !== undefined;
      const cols = this.#db
        .prepare(sql)
        .columns()
        .map((c) => ({ name: c.name, decltype: c.type }));
      return {
        params: parameterNames(program),
        cols,
        isExplain,
        isReadonly: isExplain || isTransactionControl(sql) || !programWrites(program),
      };
    });
  }

  close(): void {
    // The explicit ROLLBACK in closeQuietly matters: the binding keeps the native
    // connection open until every statement prepared on it is garbage collected, so close()
    // alone would leave an open transaction holding its locks until then.
    closeQuietly(this.#db);
  }

  #run(stmt: Statement, bound: SqlValue[], isExplain: boolean): ExecResult {
    if (!stmt.reader) {
      const info = stmt.run(bound);
      return {
        cols: [],
        rows: [],
        affectedRowCount: info.changes,
        lastInsertRowid: this.#readCounters().lastInsertRowid,
      };
    }
    const before = this.#readCounters().totalChanges;
    stmt.raw(true);
    stmt.safeIntegers(true);
    const rows = (isExplain ? allExplainRows(stmt, bound) : stmt.all(bound)) as SqlValue[][];
    const cols = stmt.columns().map((c) => ({ name: c.name, decltype: c.type }));
    const after = this.#readCounters();
    // changes() is left over from the last INSERT/UPDATE/DELETE, so a plain SELECT would
    // report it too; it belongs to this statement only if the total moved (RETURNING).
    const affected = after.totalChanges === before ? 0 : after.changes;
    return { cols, rows, affectedRowCount: affected, lastInsertRowid: after.lastInsertRowid };
  }

  /**
   * A statement that gave up on SQLITE_BUSY stays half-run in the binding, which cannot
   * reset or finalize it on demand; until garbage collection it keeps a stale snapshot, so
   * later writes on this connection fail or, in autocommit mode, are silently never
   * committed (measured with libsql 0.5.29). The only reliable cure is a new connection.
   * Inside a transaction that means rolling it back, which SQLite's own advice for
   * SQLITE_BUSY in a transaction asks for anyway.
   */
  #replaceAfterBusy(error: SqlError): SqlError {
    const hadTransaction = !this.isAutocommit;
    closeQuietly(this.#db);
    this.#counters = undefined;
    this.#db = this.#openDb();
    if (!hadTransaction) return error;
    return new SqlError(
      error.code,
      error.extendedCode,
      `${error.message}; the stream's transaction was rolled back (retry the whole transaction)`,
      { cause: error },
    );
  }

  #bindNamed(sql: string, args: readonly SqlValue[], namedArgs: readonly NamedArg[]): SqlValue[] {
    // The binding binds by name only through an object, and aborts the whole process when
    // the statement also has a nameless `?`; so we always bind by position.
    const names = cachedParameterNames(this.#db, sql);
    const bound: SqlValue[] = [...args];
    while (bound.length < names.length) bound.push(null);
    for (const arg of namedArgs) {
      let found = false;
      names.forEach((parameter, i) => {
        if (nameMatches(parameter, arg.name)) {
          bound[i] = arg.value; // named beats positional, as the spec asks
          found = true;
        }
      });
      if (!found) {
        throw new StreamRequestError(
          "ARGS_INVALID",
          `The statement has no parameter named ${JSON.stringify(arg.name)}; ` +
            `its parameters are ${JSON.stringify(names)}`,
        );
      }
    }
    return bound;
  }

  #readCounters(): { totalChanges: number; changes: number; lastInsertRowid: bigint } {
    if (this.#counters === undefined) {
      this.#counters = this.#db.prepare("SELECT total_changes(), changes(), last_insert_rowid()");
      this.#counters.raw(true);
      this.#counters.safeIntegers(true);
    }
    const [row] = this.#counters.all([]) as [bigint, bigint, bigint][];
    const [total, changes, rowid] = row ?? [0n, 0n, 0n];
    return { totalChanges: Number(total), changes: Number(changes), lastInsertRowid: rowid };
  }
}

/** Switches the file to WAL (a persistent setting) and reports the engine version. */
export function prepareDatabaseFile(file: string): { sqliteVersion: string } {
  return engine(() => {
    const db = new Database(file);
    try {
      const mode = db.prepare("PRAGMA journal_mode = WAL").raw(true).all([]) as [string][];
      if (mode[0]?.[0] !== "wal") {
        throw new Error(`Could not switch ${file} to WAL mode (got ${JSON.stringify(mode)})`);
      }
      const version = db.prepare("SELECT sqlite_version()").raw(true).all([]) as [string][];
      return { sqliteVersion: version[0]?.[0] ?? "unknown" };
    } finally {
      db.close();
    }
  });
}

export function libsqlOpener(file: string): OpenConnection {
  const openDb = () =>
    engine(() => {
      const db = new Database(file);
      // Waiting for locks happens in busy-wait.ts, between attempts: SQLite's busy handler
      // would sleep inside the call and block the event loop, so the stream holding the
      // lock could never commit.
      db.exec("PRAGMA busy_timeout = 0");
      // With WAL, NORMAL cannot corrupt the file; it only risks the last commits on power loss.
      db.exec("PRAGMA synchronous = NORMAL");
      return db;
    });
  return () => new LibsqlConnection(openDb);
}
