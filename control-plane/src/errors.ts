import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { log } from "./log.ts";

/**
 * The one error type routes throw. `code` is a stable literal other tools branch on; `message`
 * says what failed and what to do. User errors are 4xx; anything else is a system error.
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    options?: ErrorOptions & { headers?: Record<string, string> },
  ) {
    super(message, options);
    this.headers = options?.headers ?? {};
  }
  readonly headers: Record<string, string>;
}

export const badRequest = (message: string, details?: unknown) =>
  new ApiError(400, "invalid_input", message, details);
export const notFound = (what: string, id: string | number) =>
  new ApiError(404, "not_found", `${what} ${JSON.stringify(id)} does not exist`);
export const conflict = (code: string, message: string, details?: unknown) =>
  new ApiError(409, code, message, details);

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown; request_id?: string };
}

export function errorBody(
  code: string,
  message: string,
  details: unknown,
  requestId: string | undefined,
): ErrorBody {
  const error: ErrorBody["error"] = { code, message };
  if (details !== undefined) error.details = details;
  if (requestId !== undefined) error.request_id = requestId;
  return { error };
}

const statusCodes: Partial<Record<number, string>> = {
  400: "invalid_input",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "too_large",
  415: "unsupported_media_type",
  422: "unprocessable",
  429: "rate_limited",
};

/** The single error handler: every refusal and failure leaves in the DESIGN section 11 format. */
export function handleError(err: Error, c: Context): Response {
  const requestId = c.get("requestId") as string | undefined;
  if (err instanceof ApiError) {
    return c.json(
      errorBody(err.code, err.message, err.details, requestId),
      err.status,
      err.headers,
    );
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code = statusCodes[status] ?? (status >= 500 ? "internal" : "error");
    return c.json(errorBody(code, err.message || code, undefined, requestId), status);
  }
  log.error("request:failed", {
    request_id: requestId,
    method: c.req.method,
    path: c.req.path,
    error: err.message,
    stack: err.stack,
  });
  return c.json(
    errorBody(
      "internal",
      "internal error; retry, and report the request id if it persists",
      undefined,
      requestId,
    ),
    500,
  );
}
