// The embedded engine behind the same face as the HTTP client: the `libsql` binding (the one
// dev/libsql runs on) in this process, with the server's settings (WAL, synchronous=NORMAL)
// and prepared statements kept, so its figures are the engine's cost with no protocol on top.
// @libsql/client's `file:` mode is not used because it leaves synchronous=FULL (an fsync per
// commit), which would measure the disk, not the claim.

import type { InStatement } from "@libsql/client";
import Database from "libsql";
import type { SqlClient, SqlResult, SqlTransaction } from "./claim-sql.ts";

type Db = InstanceType<typeof Database>;
type Stmt = ReturnType<Db["prepare"]>;

export class EmbeddedClient implements SqlClient {
  readonly #db: Db;
  readonly #prepared = new Map<string, Stmt>();

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = NORMAL");
  }

  execute(stmt: InStatement): Promise<SqlResult> {
    try {
      return Promise.resolve(this.#run(stmt));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  batch(stmts: InStatement[], mode: "deferred" | "write"): Promise<SqlResult[]> {
    try {
      this.#db.exec(mode === "write" ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
      try {
        const results = stmts.map((s) => this.#run(s));
        this.#db.exec("COMMIT");
        return Promise.resolve(results);
      } catch (error) {
        if (this.#db.inTransaction) this.#db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  transaction(_mode: "deferred"): Promise<SqlTransaction> {
    this.#db.exec("BEGIN DEFERRED");
    const db = this.#db;
    return Promise.resolve({
      execute: (s: InStatement) => this.execute(s),
      commit: () => Promise.resolve(void db.exec("COMMIT")),
      close: () => {
        if (db.inTransaction) db.exec("ROLLBACK");
      },
    });
  }

  close(): void {
    this.#db.close();
  }

  #run(stmt: InStatement): SqlResult {
    const { sql, args = [] } = typeof stmt === "string" ? { sql: stmt } : stmt;
    if (!Array.isArray(args)) throw new TypeError("EmbeddedClient binds positional args only");
    let prepared = this.#prepared.get(sql);
    if (prepared === undefined) {
      prepared = this.#db.prepare(sql);
      this.#prepared.set(sql, prepared);
    }
    if (prepared.reader) return { rows: [...prepared.iterate(args)] as Record<string, unknown>[] };
    prepared.run(args);
    return { rows: [] };
  }
}
