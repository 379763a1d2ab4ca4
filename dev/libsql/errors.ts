// Two kinds of failure, kept apart because the Hrana client treats them differently:
// - HranaHttpError fails the whole HTTP request (4xx/5xx, JSON `{message, code}`); the client
//   then considers the stream dead.
// - StreamRequestError and SqlError fail one request inside a pipeline; they become a
//   `{"type":"error"}` result and the stream stays usable.

import type { WireError } from "./protocol.ts";

/** Caused by what the client sent: it should fix the request, not retry it. */
export type UserErrorCode =
  | "BAD_JSON"
  | "BAD_REQUEST"
  | "BODY_TOO_LARGE"
  | "BATON_INVALID"
  | "BATON_REUSED"
  | "STREAM_EXPIRED"
  | "STREAM_CLOSED"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "PROTOBUF_NOT_SUPPORTED";

/** Caused by the server's state: the same request may succeed later. */
export type SystemErrorCode = "TOO_MANY_STREAMS" | "SHUTTING_DOWN" | "INTERNAL";

export type HttpErrorCode = UserErrorCode | SystemErrorCode;

const statusByCode: Record<HttpErrorCode, number> = {
  BAD_JSON: 400,
  BAD_REQUEST: 400,
  BODY_TOO_LARGE: 413,
  BATON_INVALID: 400,
  BATON_REUSED: 400,
  STREAM_EXPIRED: 400,
  STREAM_CLOSED: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  // 404 rather than 415: the client probes `GET /v3-protobuf` and falls back on any non-2xx.
  PROTOBUF_NOT_SUPPORTED: 404,
  TOO_MANY_STREAMS: 503,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
};

export class HranaHttpError extends Error {
  override readonly name = "HranaHttpError";
  readonly status: number;

  constructor(
    readonly code: HttpErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.status = statusByCode[code];
  }
}

/** Codes for per-request failures that are not SQLite's own (those keep `SQLITE_*`). */
export type StreamErrorCode =
  | "SQL_NOT_FOUND"
  | "SQL_EXISTS"
  | "SQL_NO_STATEMENT"
  | "SQL_MANY_STATEMENTS"
  | "ARGS_INVALID"
  | "STREAM_CLOSED";

export class StreamRequestError extends Error {
  override readonly name = "StreamRequestError";

  constructor(
    readonly code: StreamErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A failure reported by the SQLite engine. `code` is the primary result code, as sqld and
 * Turso report it (`SQLITE_CONSTRAINT`); `extendedCode` keeps the detail
 * (`SQLITE_CONSTRAINT_PRIMARYKEY`) for logs and for raw Hrana users.
 */
export class SqlError extends Error {
  override readonly name = "SqlError";

  constructor(
    readonly code: string,
    readonly extendedCode: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  get isBusy(): boolean {
    // Only plain SQLITE_BUSY is worth waiting for: SQLITE_BUSY_SNAPSHOT means the
    // transaction read a snapshot that is now stale, and no amount of waiting fixes that.
    return this.extendedCode === "SQLITE_BUSY";
  }
}

/** Turns a per-request failure into the wire error; anything unexpected is rethrown. */
export function toWireError(error: unknown): WireError & { extended_code?: string } {
  if (error instanceof SqlError) {
    return { message: error.message, code: error.code, extended_code: error.extendedCode };
  }
  if (error instanceof StreamRequestError) {
    return { message: error.message, code: error.code };
  }
  throw error;
}
