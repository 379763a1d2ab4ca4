// Just enough SQL lexing to find statement boundaries and leading keywords. The libsql
// binding prepares only the first statement of a string and does not say where it ended,
// so `sequence` splits the text itself (to run, and on SQLITE_BUSY safely retry, one
// statement at a time) and `execute` refuses text that holds more than one statement
// instead of silently ignoring the rest.
//
// Runtime-neutral on purpose: it is unit-tested under Node (sql-text.test.ts).

type TokenKind = "space" | "comment" | "quoted" | "word" | "param" | "semicolon" | "other";

interface Token {
  readonly kind: TokenKind;
  readonly start: number;
  readonly end: number;
}

const isSpace = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f";
const isWordStart = (c: string) => /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
const isWordPart = (c: string) => /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80;

/** Index just past the closing `close`, where a doubled `close` is an escaped one. */
function skipQuoted(sql: string, from: number, close: string, doubling: boolean): number {
  let i = from + 1;
  while (i < sql.length) {
    if (sql[i] === close) {
      if (doubling && sql[i + 1] === close) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length; // unterminated: SQLite will report it when preparing
}

function* tokenize(sql: string): Generator<Token> {
  let i = 0;
  while (i < sql.length) {
    const start = i;
    const c = sql[i] as string;
    const next = sql[i + 1];
    let kind: TokenKind;
    if (isSpace(c)) {
      kind = "space";
      while (i < sql.length && isSpace(sql[i] as string)) i++;
    } else if (c === "-" && next === "-") {
      kind = "comment";
      const eol = sql.indexOf("\n", i);
      i = eol === -1 ? sql.length : eol + 1;
    } else if (c === "/" && next === "*") {
      kind = "comment";
      const close = sql.indexOf("*/", i + 2);
      i = close === -1 ? sql.length : close + 2;
    } else if (c === "'" || c === '"' || c === "`") {
      kind = "quoted";
      i = skipQuoted(sql, i, c, true);
    } else if (c === "[") {
      kind = "quoted";
      i = skipQuoted(sql, i, "]", false);
    } else if (c === ";") {
      kind = "semicolon";
      i++;
    } else if ((c === ":" || c === "@" || c === "$") && next !== undefined && isWordPart(next)) {
      // A parameter such as `:end` must not be mistaken for the keyword END.
      kind = "param";
      i++;
      while (i < sql.length && isWordPart(sql[i] as string)) i++;
    } else if (isWordStart(c)) {
      kind = "word";
      while (i < sql.length && isWordPart(sql[i] as string)) i++;
    } else {
      kind = "other";
      i++;
    }
    yield { kind, start, end: i };
  }
}

const isSignificant = (t: Token) => t.kind !== "space" && t.kind !== "comment";

/**
 * Splits SQL text into statements, dropping empty ones (only whitespace, comments or
 * semicolons). Semicolons inside a CREATE TRIGGER body do not end the statement: the body
 * ends at the END that closes its BEGIN, with CASE ... END pairs counted inside it (which
 * sqlite3_complete() does not do).
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let significant = 0;
  let leading: string[] = [];
  let trigger: "no" | "head" | "body" | "done" = "no";
  let caseDepth = 0;

  for (const token of tokenize(sql)) {
    if (token.kind === "semicolon" && trigger !== "head" && trigger !== "body") {
      if (significant > 0) statements.push(sql.slice(start, token.start));
      start = token.end;
      significant = 0;
      leading = [];
      trigger = "no";
      caseDepth = 0;
      continue;
    }
    if (!isSignificant(token)) continue;
    significant++;
    if (token.kind !== "word") continue;
    const word = sql.slice(token.start, token.end).toUpperCase();
    if (leading.length < 6) {
      leading.push(word);
      if (isCreateTrigger(leading)) trigger = "head";
    }
    if (trigger === "head" && word === "BEGIN") {
      trigger = "body";
    } else if (trigger === "body" && word === "CASE") {
      caseDepth++;
    } else if (trigger === "body" && word === "END") {
      if (caseDepth > 0) caseDepth--;
      else trigger = "done";
    }
  }
  if (significant > 0) statements.push(sql.slice(start));
  return statements;
}

function isCreateTrigger(leading: readonly string[]): boolean {
  const words = leading[0] === "EXPLAIN" ? leading.slice(leading[1] === "QUERY" ? 3 : 1) : leading;
  if (words[0] !== "CREATE") return false;
  const rest = words[1] === "TEMP" || words[1] === "TEMPORARY" ? words[2] : words[1];
  return rest === "TRIGGER";
}

/** The first keywords of the statement, upper-cased, skipping comments. */
export function leadingWords(sql: string, count: number): { words: string[]; ends: number[] } {
  const words: string[] = [];
  const ends: number[] = [];
  for (const token of tokenize(sql)) {
    if (words.length >= count) break;
    if (!isSignificant(token)) continue;
    if (token.kind !== "word") break;
    words.push(sql.slice(token.start, token.end).toUpperCase());
    ends.push(token.end);
  }
  return { words, ends };
}

/** For `EXPLAIN [QUERY PLAN] stmt`, the text of `stmt`; otherwise undefined. */
export function explainedStatement(sql: string): string | undefined {
  const { words, ends } = leadingWords(sql, 3);
  if (words[0] !== "EXPLAIN") return undefined;
  const queryPlan = words[1] === "QUERY" && words[2] === "PLAN";
  return sql.slice(queryPlan ? ends[2] : ends[0]);
}

const TRANSACTION_CONTROL = new Set(["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]);

/** BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE: read-only by sqlite3_stmt_readonly()'s rule. */
export function isTransactionControl(sql: string): boolean {
  const first = leadingWords(sql, 1).words[0];
  return first !== undefined && TRANSACTION_CONTROL.has(first);
}
