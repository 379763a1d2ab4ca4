// The local libSQL server (dev/libsql) as its users see it: through @libsql/client (Node and
// web builds), through drizzle's migrator, and through raw Hrana HTTP requests. Each server
// here is a real Deno process on a temporary database file.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@libsql/client";
import { createClient as createWebClient } from "@libsql/client/web";
import { drizzle } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  WireError,
  WirePipelineRespBody,
  WireStreamResponse,
  WireStreamResult,
} from "../dev/libsql/protocol.ts";
import { type LibsqlServer, startLibsqlServer } from "./support/libsql.ts";

const migrationsFolder = fileURLToPath(new URL("./fixtures/libsql-migrations", import.meta.url));

let dir: string;
let server: LibsqlServer;
// Short timeouts, so that expiry and lock give-up can be observed quickly.
let impatient: LibsqlServer;
const clients: Client[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "libsql-server-test-"));
  [server, impatient] = await Promise.all([
    startLibsqlServer({ file: join(dir, "nested", "main.db") }),
    startLibsqlServer({
      file: join(dir, "impatient.db"),
      idleStreamTimeoutMs: 1_000,
      busyTimeoutMs: 100,
    }),
  ]);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all([server?.stop(), impatient?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function track(client: Client): Client {
  clients.push(client);
  return client;
}

async function count(client: Client, table: string): Promise<bigint> {
  const rs = await client.execute(`SELECT count(*) AS n FROM ${table}`);
  return BigInt(rs.rows[0]?.n as bigint | number);
}

// ---- one suite, two client builds ----

const builds = [
  { name: "@libsql/client", create: createClient, prefix: "node" },
  { name: "@libsql/client/web", create: createWebClient, prefix: "web" },
] as const;

describe.each(builds)("$name against the local server", ({ create, prefix }) => {
  let db: Client;
  const table = `${prefix}_items`;

  beforeAll(async () => {
    db = track(create({ url: server.url, intMode: "bigint" }));
    await db.execute(
      `CREATE TABLE ${table} (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, n)`,
    );
  });

  it("execute() round-trips null, 64-bit integers, floats, text and blobs", async () => {
    const big = 2n ** 53n + 1n;
    const blob = new Uint8Array([0, 1, 2, 254, 255]);
    const inserted = await db.execute({
      sql: `INSERT INTO ${table} (i, f, t, b, n) VALUES (?, ?, ?, ?, ?)`,
      args: [big, 1.5, "héllo ✓ '; --", blob, null],
    });
    expect(inserted.rowsAffected).toBe(1);
    expect(typeof inserted.lastInsertRowid).toBe("bigint");

    const rs = await db.execute({
      sql: `SELECT i, f, t, b, n, typeof(i) AS ti, typeof(f) AS tf FROM ${table} WHERE id = ?`,
      args: [inserted.lastInsertRowid as bigint],
    });
    expect(rs.columns).toEqual(["i", "f", "t", "b", "n", "ti", "tf"]);
    expect(rs.columnTypes).toEqual(["INTEGER", "REAL", "TEXT", "BLOB", "", "", ""]);
    const row = rs.rows[0];
    expect(row?.i).toBe(big);
    expect(row?.f).toBe(1.5);
    expect(row?.t).toBe("héllo ✓ '; --");
    expect(new Uint8Array(row?.b as ArrayBuffer)).toEqual(blob);
    expect(row?.n).toBeNull();
    expect([row?.ti, row?.tf]).toEqual(["integer", "real"]);

    const extremes = await db.execute({
      sql: "SELECT ? AS lo, ? AS hi",
      args: [-(2n ** 63n), 2n ** 63n - 1n],
    });
    expect(extremes.rows[0]?.lo).toBe(-(2n ** 63n));
    expect(extremes.rows[0]?.hi).toBe(2n ** 63n - 1n);
  });

  it("execute() binds named arguments with or without their prefix", async () => {
    const rs = await db.execute({
      sql: "SELECT :a AS a, @b AS b, $c AS c, :a || 'x' AS again",
      args: { a: "A", "@b": 2n, c: null },
    });
    expect(rs.rows[0]).toMatchObject({ a: "A", b: 2n, c: null, again: "Ax" });
  });

  it("execute() updates and deletes report rowsAffected; SQL errors keep SQLite codes", async () => {
    await db.execute({
      sql: `INSERT INTO ${table} (id, t) VALUES (100, 'a'), (101, 'b')`,
      args: [],
    });
    const updated = await db.execute(`UPDATE ${table} SET t = 'z' WHERE id IN (100, 101)`);
    expect(updated.rowsAffected).toBe(2);
    const deleted = await db.execute(`DELETE FROM ${table} WHERE id = 101`);
    expect(deleted.rowsAffected).toBe(1);
    await expect(db.execute(`INSERT INTO ${table} (id) VALUES (100)`)).rejects.toMatchObject({
      code: "SQLITE_CONSTRAINT",
    });
    await expect(db.execute("SELEC 1")).rejects.toMatchObject({ code: "SQLITE_ERROR" });
  });

  it.each(["write", "read", "deferred"] as const)(
    "batch() in %s mode runs all statements",
    async (mode) => {
      const before = await count(db, table);
      const statements =
        mode === "read"
          ? [`SELECT count(*) AS n FROM ${table}`, "SELECT 1 AS one"]
          : [
              { sql: `INSERT INTO ${table} (t) VALUES (?)`, args: [`${mode}-1`] },
              { sql: `INSERT INTO ${table} (t) VALUES (?)`, args: [`${mode}-2`] },
            ];
      const results = await db.batch(statements, mode);
      expect(results).toHaveLength(2);
      if (mode === "read") {
        expect(results[0]?.rows[0]?.n).toBe(before);
        expect(results[1]?.rows[0]?.one).toBe(1n);
      } else {
        expect(results.map((r) => r.rowsAffected)).toEqual([1, 1]);
        expect(await count(db, table)).toBe(before + 2n);
      }
    },
  );

  it.each(["write", "read", "deferred"] as const)(
    "batch() in %s mode rolls the whole batch back when a statement fails",
    async (mode) => {
      const before = await count(db, table);
      const batch = db.batch(
        [
          `INSERT INTO ${table} (t) VALUES ('doomed')`,
          `INSERT INTO ${table} (id) VALUES (100)`, // duplicate key (or a write in a read txn)
          `INSERT INTO ${table} (t) VALUES ('never')`,
        ],
        mode,
      );
      await expect(batch).rejects.toMatchObject({
        code: mode === "read" ? expect.stringMatching(/^SQLITE_/) : "SQLITE_CONSTRAINT",
      });
      expect(await count(db, table)).toBe(before);
    },
  );

  it("transaction() commits across requests, and rollback() discards", async () => {
    const before = await count(db, table);
    const tx = await db.transaction("write");
    await tx.execute(`INSERT INTO ${table} (t) VALUES ('tx-1')`);
    await tx.batch([`INSERT INTO ${table} (t) VALUES ('tx-2')`]);
    // Another stream does not see uncommitted rows (WAL: readers see the last commit).
    expect(await count(db, table)).toBe(before);
    expect((await tx.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n).toBe(before + 2n);
    await tx.commit();
    expect(await count(db, table)).toBe(before + 2n);

    const undone = await db.transaction("deferred");
    await undone.execute(`DELETE FROM ${table}`);
    await undone.rollback();
    expect(await count(db, table)).toBe(before + 2n);
  });

  it("executeMultiple() and migrate() run scripts, including a trigger body", async () => {
    await db.executeMultiple(`
      CREATE TABLE ${prefix}_log (msg TEXT);
      CREATE TRIGGER ${prefix}_audit AFTER INSERT ON ${prefix}_log BEGIN
        INSERT INTO ${prefix}_log_copy VALUES (CASE WHEN new.msg = 'x' THEN 'X' ELSE new.msg END);
      END;
      CREATE TABLE ${prefix}_log_copy (msg TEXT);
      INSERT INTO ${prefix}_log VALUES ('x'); -- a comment; with a semicolon
    `);
    expect((await db.execute(`SELECT msg FROM ${prefix}_log_copy`)).rows[0]?.msg).toBe("X");

    await db.migrate([
      `CREATE TABLE ${prefix}_migrated (id INTEGER PRIMARY KEY, v TEXT)`,
      `INSERT INTO ${prefix}_migrated (v) VALUES ('one')`,
    ]);
    expect(await count(db, `${prefix}_migrated`)).toBe(1n);
    await expect(
      db.executeMultiple("INSERT INTO nowhere VALUES (1); SELECT 1"),
    ).rejects.toMatchObject({ code: "SQLITE_ERROR" });
  });
});

// ---- concurrency ----

describe("two clients writing at once", () => {
  it("a writer waits for another stream's write transaction, then both commit", async () => {
    const a = track(createClient({ url: server.url }));
    const b = track(createWebClient({ url: server.url }));
    await a.execute("CREATE TABLE waits (who TEXT)");
    const tx = await a.transaction("write");
    await tx.execute("INSERT INTO waits VALUES ('a')");
    let settled = false;
    const second = b.execute("INSERT INTO waits VALUES ('b')").finally(() => {
      settled = true;
    });
    await sleep(300);
    expect(settled).toBe(false); // still waiting for the lock, not failed
    await tx.commit();
    expect((await second).rowsAffected).toBe(1);
    expect(await count(a, "waits")).toBe(2n);
  });

  it("many concurrent writes from two clients all land exactly once", async () => {
    const a = track(createClient({ url: server.url }));
    const b = track(createWebClient({ url: server.url }));
    await a.execute("CREATE TABLE crowd (who TEXT, n INTEGER, UNIQUE (who, n))");
    const writes: Promise<unknown>[] = [];
    for (const [who, client] of [
      ["a", a],
      ["b", b],
    ] as const) {
      for (let n = 0; n < 30; n++) {
        writes.push(client.execute({ sql: "INSERT INTO crowd VALUES (?, ?)", args: [who, n] }));
      }
      for (let n = 100; n < 110; n += 2) {
        writes.push(
          client.batch(
            [
              { sql: "INSERT INTO crowd VALUES (?, ?)", args: [who, n] },
              { sql: "INSERT INTO crowd VALUES (?, ?)", args: [who, n + 1] },
            ],
            "write",
          ),
        );
      }
      const tx = await client.transaction("write");
      writes.push(
        tx
          .execute({ sql: "INSERT INTO crowd VALUES (?, 999)", args: [who] })
          .then(() => tx.commit()),
      );
    }
    await Promise.all(writes);
    expect(await count(a, "crowd")).toBe(82n);
  });

  it("a writer that cannot get the lock in time gets SQLITE_BUSY and changes nothing", async () => {
    const a = track(createClient({ url: impatient.url }));
    const b = track(createClient({ url: impatient.url }));
    await a.execute("CREATE TABLE contended (who TEXT)");
    const tx = await a.transaction("write");
    await tx.execute("INSERT INTO contended VALUES ('a')");
    await expect(b.execute("INSERT INTO contended VALUES ('b')")).rejects.toMatchObject({
      code: "SQLITE_BUSY",
      message: expect.stringMatching(/gave up after waiting \d+ ms/),
    });
    await expect(b.batch(["INSERT INTO contended VALUES ('b')"], "write")).rejects.toMatchObject({
      code: "SQLITE_BUSY",
    });
    await tx.commit();
    expect((await a.execute("SELECT who FROM contended")).rows.map((r) => r.who)).toEqual(["a"]);
  });
});

// ---- drizzle ----

describe("drizzle migrations through the server", () => {
  it("migrate() applies the fixture migrations once", async () => {
    const client = track(createClient({ url: server.url }));
    const db = drizzle(client);
    await migrate(db, { migrationsFolder });
    await migrate(db, { migrationsFolder }); // already applied: a no-op
    expect(await count(client, "__drizzle_migrations")).toBe(2n);
    await client.execute("INSERT INTO projects (name) VALUES ('site')");
    await client.execute("INSERT INTO deployments (id, project_id) VALUES ('d1', 1)");
    const rs = await client.execute("SELECT deploy_count FROM projects WHERE name = 'site'");
    expect(rs.rows[0]?.deploy_count).toBe(1); // the migrated trigger ran
    await expect(
      client.execute("INSERT INTO projects (name) VALUES ('site')"),
    ).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT" });
  });
});

// ---- raw Hrana over HTTP ----

type Json = Record<string, unknown>;

async function post(path: string, body: unknown, base = server.url): Promise<Response> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: payload,
  });
}

async function pipeline(
  version: 2 | 3,
  baton: string | null,
  requests: Json[],
  base = server.url,
): Promise<WirePipelineRespBody> {
  const response = await post(`/v${version}/pipeline`, { baton, requests }, base);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as WirePipelineRespBody;
}

async function rejected(
  path: string,
  body: unknown,
  base = server.url,
): Promise<{ status: number; error: WireError }> {
  const response = await post(path, body, base);
  expect(response.headers.get("content-type")).toBe("application/json");
  return { status: response.status, error: (await response.json()) as WireError };
}

function ok<T extends WireStreamResponse["type"]>(
  result: WireStreamResult | undefined,
  type: T,
): Extract<WireStreamResponse, { type: T }> {
  if (result?.type !== "ok")
    throw new Error(`expected an ok result, got ${JSON.stringify(result)}`);
  expect(result.response.type).toBe(type);
  return result.response as Extract<WireStreamResponse, { type: T }>;
}

function failed(result: WireStreamResult | undefined): WireError {
  if (result?.type !== "error")
    throw new Error(`expected an error result, got ${JSON.stringify(result)}`);
  return result.error;
}

const exec = (sql: string, extra: Json = {}): Json => ({
  type: "execute",
  stmt: { sql, ...extra },
});
const int = (value: bigint | number) => ({ type: "integer", value: String(value) });

describe("Hrana over HTTP, raw", () => {
  beforeAll(async () => {
    await pipeline(2, null, [
      exec("CREATE TABLE raw (id INTEGER PRIMARY KEY, v)"),
      { type: "close" },
    ]);
  });

  it("GET /v2, /v3, /health and /version answer 200; /v3-protobuf is refused so clients fall back", async () => {
    for (const path of ["/v2", "/v3", "/health", "/version"]) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(200);
    }
    const version = (await (await fetch(`${server.url}/version`)).json()) as Json;
    expect(version.hrana).toEqual(["2", "3"]);
    const protobuf = await fetch(`${server.url}/v3-protobuf`);
    expect(protobuf.status).toBe(404);
    expect(((await protobuf.json()) as WireError).code).toBe("PROTOBUF_NOT_SUPPORTED");
  });

  it("execute returns cols, rows, counts and typed values; v3 adds query_duration_ms", async () => {
    const insert = exec("INSERT INTO raw (v) VALUES (?), (:blob), (@f), ($t) RETURNING id, v", {
      args: [int(2n ** 62n)],
      named_args: [
        { name: "blob", value: { type: "blob", base64: "AAH/" } },
        { name: "@f", value: { type: "float", value: 0.25 } },
        { name: "t", value: { type: "text", value: "x" } },
      ],
    });
    const v2 = await pipeline(2, null, [
      insert,
      exec("SELECT NULL AS n", { want_rows: false }),
      { type: "close" },
    ]);
    expect(v2.baton).toBeNull();
    const result = ok(v2.results[0], "execute").result;
    expect(result.cols).toEqual([
      { name: "id", decltype: "INTEGER" },
      { name: "v", decltype: null },
    ]);
    expect(result.rows.map((row) => row[1])).toEqual([
      int(2n ** 62n),
      { type: "blob", base64: "AAH/" },
      { type: "float", value: 0.25 },
      { type: "text", value: "x" },
    ]);
    expect(result.affected_row_count).toBe(4);
    expect(result.rows[3]?.[0]).toEqual({ type: "integer", value: result.last_insert_rowid });
    expect(result.query_duration_ms).toBeUndefined();
    expect(ok(v2.results[1], "execute").result.rows).toEqual([]);

    const v3 = await pipeline(3, null, [exec("SELECT NULL AS n, 1e999 AS inf"), { type: "close" }]);
    const r3 = ok(v3.results[0], "execute").result;
    expect(r3.rows).toEqual([[{ type: "null" }, { type: "float", value: Infinity }]]);
    expect(r3.query_duration_ms).toBeTypeOf("number");
  });

  it("execute reports SQL errors per request, and the pipeline goes on", async () => {
    const body = await pipeline(2, null, [
      exec("SELECT * FROM missing"),
      exec("SELECT 1; SELECT 2"),
      exec("  -- nothing\n"),
      exec("SELECT :x", { named_args: [{ name: "y", value: { type: "null" } }] }),
      exec("SELECT 7 AS seven"),
      { type: "close" },
    ]);
    expect(failed(body.results[0])).toMatchObject({
      code: "SQLITE_ERROR",
      message: "no such table: missing",
    });
    expect(failed(body.results[1]).code).toBe("SQL_MANY_STATEMENTS");
    expect(failed(body.results[2]).code).toBe("SQL_NO_STATEMENT");
    expect(failed(body.results[3]).code).toBe("ARGS_INVALID");
    expect(ok(body.results[4], "execute").result.rows).toEqual([[int(7)]]);
  });

  it("batch evaluates ok, error, not, and, or and is_autocommit conditions", async () => {
    const step = (sql: string, condition?: Json) => ({
      stmt: { sql },
      ...(condition ? { condition } : {}),
    });
    const okC = (s: number) => ({ type: "ok", step: s });
    const errC = (s: number) => ({ type: "error", step: s });
    const steps = [
      step("SELECT 0"), // 0: ok
      step("SELECT * FROM missing"), // 1: error
      step("SELECT 2", okC(0)), // runs
      step("SELECT 3", okC(1)), // skipped
      step("SELECT 4", errC(1)), // runs
      step("SELECT 5", { type: "not", cond: okC(1) }), // runs
      step("SELECT 6", { type: "and", conds: [okC(0), errC(1)] }), // runs
      step("SELECT 7", { type: "and", conds: [okC(0), okC(1)] }), // skipped
      step("SELECT 8", { type: "or", conds: [okC(1), errC(0)] }), // skipped
      step("SELECT 9", { type: "or", conds: [okC(1), okC(0)] }), // runs
      step("SELECT 10", { type: "is_autocommit" }), // runs
      step("BEGIN"), // 11
      step("SELECT 12", { type: "is_autocommit" }), // skipped: inside a transaction now
      step("SELECT 13", { type: "not", cond: { type: "is_autocommit" } }), // runs
      step("ROLLBACK"),
    ];
    const body = await pipeline(3, null, [{ type: "batch", batch: { steps } }, { type: "close" }]);
    const { step_results, step_errors } = ok(body.results[0], "batch").result;
    const ran = step_results.map((r, i) => (r ? "ok" : step_errors[i] ? "error" : "skipped"));
    expect(ran).toEqual([
      "ok",
      "error",
      "ok",
      "skipped",
      "ok",
      "ok",
      "ok",
      "skipped",
      "skipped",
      "ok",
      "ok",
      "ok",
      "skipped",
      "ok",
      "ok",
    ]);
    expect(step_errors[1]).toMatchObject({ code: "SQLITE_ERROR" });
  });

  it("sequence runs a script and stops at the first failing statement", async () => {
    const body = await pipeline(2, null, [
      { type: "sequence", sql: "CREATE TABLE seq (x); INSERT INTO seq VALUES (1);" },
      {
        type: "sequence",
        sql: "INSERT INTO seq VALUES (2); INSERT INTO nope VALUES (3); INSERT INTO seq VALUES (4)",
      },
      exec("SELECT x FROM seq ORDER BY x"),
      { type: "close" },
    ]);
    ok(body.results[0], "sequence");
    expect(failed(body.results[1]).code).toBe("SQLITE_ERROR");
    expect(ok(body.results[2], "execute").result.rows).toEqual([[int(1)], [int(2)]]);
  });

  it("describe reports params, cols, is_explain and is_readonly", async () => {
    const body = await pipeline(2, null, [
      { type: "describe", sql: "SELECT id AS key, v FROM raw WHERE id = :id OR id = ? OR id = ?5" },
      { type: "describe", sql: "INSERT INTO raw (v) VALUES (@v)" },
      { type: "describe", sql: "EXPLAIN SELECT 1" },
      { type: "describe", sql: "SELECT * FROM missing" },
      { type: "close" },
    ]);
    expect(ok(body.results[0], "describe").result).toEqual({
      params: [{ name: ":id" }, { name: null }, { name: null }, { name: null }, { name: "?5" }],
      cols: [
        { name: "key", decltype: "INTEGER" },
        { name: "v", decltype: null },
      ],
      is_explain: false,
      is_readonly: true,
    });
    expect(ok(body.results[1], "describe").result).toMatchObject({
      params: [{ name: "@v" }],
      cols: [],
      is_explain: false,
      is_readonly: false,
    });
    expect(ok(body.results[2], "describe").result).toMatchObject({
      is_explain: true,
      is_readonly: true,
    });
    expect(failed(body.results[3]).code).toBe("SQLITE_ERROR");
  });

  it("store_sql and close_sql keep SQL texts for execute, batch, sequence and describe", async () => {
    const body = await pipeline(2, null, [
      { type: "store_sql", sql_id: 1, sql: "SELECT ? AS v" },
      { type: "execute", stmt: { sql_id: 1, args: [int(5)] } },
      { type: "batch", batch: { steps: [{ stmt: { sql_id: 1, args: [int(6)] } }] } },
      { type: "describe", sql_id: 1 },
      { type: "store_sql", sql_id: 2, sql: "SELECT 1; SELECT 2" },
      { type: "sequence", sql_id: 2 },
      { type: "store_sql", sql_id: 1, sql: "SELECT 'again'" },
      { type: "close_sql", sql_id: 1 },
      { type: "execute", stmt: { sql_id: 1 } },
      { type: "close_sql", sql_id: 42 },
      { type: "close" },
    ]);
    expect(ok(body.results[0], "store_sql")).toEqual({ type: "store_sql" });
    expect(ok(body.results[1], "execute").result.rows).toEqual([[int(5)]]);
    expect(ok(body.results[2], "batch").result.step_results[0]?.rows).toEqual([[int(6)]]);
    expect(ok(body.results[3], "describe").result.params).toEqual([{ name: null }]);
    ok(body.results[5], "sequence");
    expect(failed(body.results[6]).code).toBe("SQL_EXISTS");
    ok(body.results[7], "close_sql");
    expect(failed(body.results[8]).code).toBe("SQL_NOT_FOUND");
    ok(body.results[9], "close_sql"); // closing an unknown id is not an error
  });

  it("batons carry an interactive transaction across requests; get_autocommit tracks it", async () => {
    const first = await pipeline(3, null, [
      { type: "get_autocommit" },
      exec("BEGIN"),
      exec("INSERT INTO raw (v) VALUES ('tx')"),
    ]);
    expect(ok(first.results[0], "get_autocommit").is_autocommit).toBe(true);
    expect(first.baton).toEqual(expect.any(String));
    const second = await pipeline(3, first.baton, [
      { type: "get_autocommit" },
      exec("SELECT count(*) FROM raw WHERE v = 'tx'"),
    ]);
    expect(second.baton).not.toBe(first.baton); // a new baton on every response
    expect(ok(second.results[0], "get_autocommit").is_autocommit).toBe(false);
    expect(ok(second.results[1], "execute").result.rows).toEqual([[int(1)]]);
    const third = await pipeline(3, second.baton, [
      exec("ROLLBACK"),
      { type: "get_autocommit" },
      { type: "close" },
      exec("SELECT 1"),
    ]);
    expect(ok(third.results[1], "get_autocommit").is_autocommit).toBe(true);
    expect(failed(third.results[3]).code).toBe("STREAM_CLOSED");
    expect(third.baton).toBeNull();
    const check = await pipeline(2, null, [
      exec("SELECT count(*) FROM raw WHERE v = 'tx'"),
      { type: "close" },
    ]);
    expect(ok(check.results[0], "execute").result.rows).toEqual([[int(0)]]);

    // The closed stream's last baton now fails clearly.
    expect(await rejected("/v3/pipeline", { baton: second.baton, requests: [] })).toMatchObject({
      status: 400,
      error: { code: "STREAM_CLOSED" },
    });
  });

  it("an old or made-up baton is an HTTP 400 with a clear message", async () => {
    const first = await pipeline(2, null, [exec("SELECT 1")]);
    await pipeline(2, first.baton, [exec("SELECT 1")]);
    const reused = await rejected("/v2/pipeline", {
      baton: first.baton,
      requests: [exec("SELECT 1")],
    });
    expect(reused).toMatchObject({ status: 400, error: { code: "BATON_REUSED" } });
    expect(reused.error.message).toMatch(/already used/);
    const madeUp = await rejected("/v2/pipeline", { baton: "s1.forged", requests: [] });
    expect(madeUp).toMatchObject({ status: 400, error: { code: "BATON_INVALID" } });
  });

  it("v3/cursor streams a batch as JSON lines", async () => {
    const response = await post("/v3/cursor", {
      baton: null,
      batch: {
        steps: [
          { stmt: { sql: "SELECT 1 AS a UNION ALL SELECT 2" } },
          { stmt: { sql: "SELECT * FROM missing" } },
        ],
      },
    });
    expect(response.status).toBe(200);
    const [head, ...entries] = (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Json);
    expect(head?.baton).toEqual(expect.any(String));
    expect(entries.map((e) => e.type)).toEqual([
      "step_begin",
      "row",
      "row",
      "step_end",
      "step_error",
    ]);
    await pipeline(3, head?.baton as string, [{ type: "close" }]);
  });

  describe("malformed requests get HTTP 400 before anything runs", () => {
    // Unknown request types are refused for the whole pipeline (HTTP 400), not answered as a
    // per-request Hrana error: the pipeline is validated up front, because running the
    // requests around one we cannot interpret could commit half of what the client meant.
    it.each([
      ["bad JSON", "{not json", "BAD_JSON"],
      ["a body that is not an object", "[]", "BAD_REQUEST"],
      [
        "an unknown request type",
        { baton: null, requests: [{ type: "open_cursor" }] },
        "BAD_REQUEST",
      ],
      [
        "an integer sent as a JSON number",
        { baton: null, requests: [exec("SELECT ?", { args: [{ type: "integer", value: 1 }] })] },
        "BAD_REQUEST",
      ],
      [
        "an integer beyond 64 bits",
        { baton: null, requests: [exec("SELECT ?", { args: [int(2n ** 63n)] })] },
        "BAD_REQUEST",
      ],
      [
        "a blob that is not base64",
        { baton: null, requests: [exec("SELECT ?", { args: [{ type: "blob", base64: "@@" }] })] },
        "BAD_REQUEST",
      ],
      [
        "an unknown value type",
        { baton: null, requests: [exec("SELECT ?", { args: [{ type: "bool", value: true }] })] },
        "BAD_REQUEST",
      ],
      [
        "both sql and sql_id",
        { baton: null, requests: [{ type: "execute", stmt: { sql: "SELECT 1", sql_id: 1 } }] },
        "BAD_REQUEST",
      ],
      [
        "a condition on a later step",
        {
          baton: null,
          requests: [
            {
              type: "batch",
              batch: { steps: [{ stmt: { sql: "SELECT 1" }, condition: { type: "ok", step: 0 } }] },
            },
          ],
        },
        "BAD_REQUEST",
      ],
      [
        "get_autocommit on v2",
        { baton: null, requests: [{ type: "get_autocommit" }] },
        "BAD_REQUEST",
      ],
    ])("%s", async (_name, body, code) => {
      const before = await pipeline(2, null, [exec("SELECT count(*) FROM raw"), { type: "close" }]);
      const { status, error } = await rejected("/v2/pipeline", body);
      expect({ status, code: error.code }).toEqual({ status: 400, code });
      expect(error.message.length).toBeGreaterThan(10);
      const after = await pipeline(2, null, [exec("SELECT count(*) FROM raw"), { type: "close" }]);
      expect(after.results).toEqual(
        before.results.map((r) => ({
          ...r,
          response: { ...(r as { response: object }).response },
        })),
      );
    });

    it("a malformed request on a live stream closes it, releasing its transaction", async () => {
      const open = await pipeline(2, null, [
        exec("BEGIN IMMEDIATE"),
        exec("INSERT INTO raw (v) VALUES ('half')"),
      ]);
      const { status } = await rejected("/v2/pipeline", {
        baton: open.baton,
        requests: [{ type: "bogus" }],
      });
      expect(status).toBe(400);
      expect((await rejected("/v2/pipeline", { baton: open.baton, requests: [] })).error.code).toBe(
        "STREAM_CLOSED",
      );
      const check = await pipeline(2, null, [
        exec("INSERT INTO raw (v) VALUES ('after')"),
        exec("SELECT count(*) FROM raw WHERE v = 'half'"),
        { type: "close" },
      ]);
      expect(ok(check.results[1], "execute").result.rows).toEqual([[int(0)]]);
    });

    it("wrong methods and paths are 405 and 404", async () => {
      expect((await fetch(`${server.url}/v2/pipeline`)).status).toBe(405);
      expect((await post("/v9/pipeline", {})).status).toBe(404);
    });
  });

  describe("locks, on the server with a 100 ms busy timeout", () => {
    const on = (baton: string | null, requests: Json[]) =>
      pipeline(2, baton, requests, impatient.url);

    beforeAll(async () => {
      await on(null, [exec("CREATE TABLE locks (v)"), { type: "close" }]);
    });

    it("a stream that got SQLITE_BUSY keeps working, and its later writes are committed", async () => {
      const holder = await on(null, [
        exec("BEGIN IMMEDIATE"),
        exec("INSERT INTO locks VALUES ('a')"),
      ]);
      const waiter = await on(null, [exec("INSERT INTO locks VALUES ('lost')")]);
      expect(failed(waiter.results[0]).code).toBe("SQLITE_BUSY");
      await on(holder.baton, [exec("COMMIT"), { type: "close" }]);
      const again = await on(waiter.baton, [
        exec("INSERT INTO locks VALUES ('b')"),
        { type: "close" },
      ]);
      ok(again.results[0], "execute");
      const check = await on(null, [exec("SELECT v FROM locks ORDER BY v"), { type: "close" }]);
      expect(ok(check.results[0], "execute").result.rows).toEqual([
        [{ type: "text", value: "a" }],
        [{ type: "text", value: "b" }],
      ]);
    });

    it("SQLITE_BUSY inside a transaction rolls that transaction back and says so", async () => {
      const reader = await on(null, [exec("BEGIN"), exec("SELECT count(*) FROM locks")]);
      await on(null, [exec("INSERT INTO locks VALUES ('c')"), { type: "close" }]); // newer snapshot
      const write = await on(reader.baton, [
        exec("INSERT INTO locks VALUES ('stale')"),
        exec("SELECT 1"),
      ]);
      expect(failed(write.results[0])).toMatchObject({ code: "SQLITE_BUSY" });
      expect(failed(write.results[0]).message).toMatch(/transaction was rolled back/);
      const after = await pipeline(
        3,
        write.baton,
        [{ type: "get_autocommit" }, exec("INSERT INTO locks VALUES ('d')"), { type: "close" }],
        impatient.url,
      );
      expect(ok(after.results[0], "get_autocommit").is_autocommit).toBe(true);
      ok(after.results[1], "execute");
    });

    it("named arguments and EXPLAIN leave no lock behind on their stream", async () => {
      const stream = await on(null, [
        exec("INSERT INTO locks VALUES (:v)", {
          named_args: [{ name: "v", value: { type: "text", value: "n" } }],
        }),
        exec("EXPLAIN INSERT INTO locks VALUES (1)"),
        { type: "describe", sql: "INSERT INTO locks VALUES (?)" },
      ]);
      // The stream stays open and idle; another stream must be able to write at once.
      const other = await on(null, [exec("INSERT INTO locks VALUES ('o')"), { type: "close" }]);
      ok(other.results[0], "execute");
      await on(stream.baton, [{ type: "close" }]);
    });
  });

  it("an idle stream expires: its baton fails clearly and its transaction is rolled back", async () => {
    await pipeline(2, null, [exec("CREATE TABLE expiring (v)"), { type: "close" }], impatient.url);
    const open = await pipeline(
      2,
      null,
      [exec("BEGIN IMMEDIATE"), exec("INSERT INTO expiring VALUES (1)")],
      impatient.url,
    );
    await sleep(1_300); // idle timeout there is 1000 ms
    const expired = await rejected(
      "/v2/pipeline",
      { baton: open.baton, requests: [exec("COMMIT")] },
      impatient.url,
    );
    expect(expired).toMatchObject({ status: 400, error: { code: "STREAM_EXPIRED" } });
    expect(expired.error.message).toMatch(/expired after 1000 ms/);
    // The lock is free again (busy timeout there is 100 ms) and the insert is gone.
    const after = await pipeline(
      2,
      null,
      [exec("INSERT INTO expiring VALUES (2)"), exec("SELECT v FROM expiring"), { type: "close" }],
      impatient.url,
    );
    expect(ok(after.results[1], "execute").result.rows).toEqual([[int(2)]]);
  });
});
