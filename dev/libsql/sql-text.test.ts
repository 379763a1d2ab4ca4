import { describe, expect, it } from "vitest";
import {
  explainedStatement,
  isTransactionControl,
  leadingWords,
  splitStatements,
} from "./sql-text.ts";

describe("splitStatements()", () => {
  it("splits on semicolons and drops empty statements", () => {
    expect(splitStatements("SELECT 1; SELECT 2;;  ; -- done\n")).toEqual(["SELECT 1", " SELECT 2"]);
  });

  it("returns nothing for text without a statement", () => {
    expect(splitStatements("")).toEqual([]);
    expect(splitStatements("  -- only a comment")).toEqual([]);
    expect(splitStatements("/* block */ ;")).toEqual([]);
  });

  it("ignores semicolons inside strings, identifiers and comments", () => {
    const sql = `INSERT INTO "a;b" VALUES ('x;''y', [c;d], \`e;f\`) /* ; */ -- ;\n`;
    expect(splitStatements(sql)).toEqual([sql]);
  });

  it("keeps a CREATE TRIGGER body, with CASE ... END inside it, as one statement", () => {
    const trigger =
      "CREATE TEMP TRIGGER t AFTER INSERT ON u BEGIN " +
      "INSERT INTO v VALUES (CASE WHEN new.a > 0 THEN 1 ELSE 2 END); " +
      "UPDATE w SET n = n + 1; END";
    expect(splitStatements(`${trigger}; SELECT 1`)).toEqual([trigger, " SELECT 1"]);
  });

  it("does not take a parameter named :end or a column named `case` for keywords", () => {
    const trigger = "CREATE TRIGGER t AFTER INSERT ON u BEGIN SELECT `case`, :end; END";
    expect(splitStatements(`${trigger};SELECT 2`)).toEqual([trigger, "SELECT 2"]);
  });

  it("keeps an unterminated string to the end, for SQLite to report", () => {
    expect(splitStatements("SELECT 'a; SELECT 2")).toEqual(["SELECT 'a; SELECT 2"]);
  });
});

describe("leading keywords", () => {
  it("leadingWords() skips comments and stops at the first non-word", () => {
    expect(leadingWords("/* x */ explain -- y\n query plan select", 4).words).toEqual([
      "EXPLAIN",
      "QUERY",
      "PLAN",
      "SELECT",
    ]);
    expect(leadingWords("SELECT (1)", 3).words).toEqual(["SELECT"]);
  });

  it("explainedStatement() strips EXPLAIN and EXPLAIN QUERY PLAN", () => {
    expect(explainedStatement("EXPLAIN SELECT 1")).toBe(" SELECT 1");
    expect(explainedStatement("explain query plan SELECT 1")).toBe(" SELECT 1");
    expect(explainedStatement("SELECT 1")).toBeUndefined();
  });

  it("isTransactionControl() recognises BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE", () => {
    for (const sql of [
      "BEGIN IMMEDIATE",
      "commit",
      "END",
      "ROLLBACK TO s",
      "SAVEPOINT s",
      "RELEASE s",
    ]) {
      expect(isTransactionControl(sql)).toBe(true);
    }
    expect(isTransactionControl("SELECT 1")).toBe(false);
  });
});
