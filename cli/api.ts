import { CliError } from "./errors.ts";

export interface Connection {
  /** The control plane's base URL, without a trailing slash. */
  url: string;
  token: string;
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

/** How long a plain request may take before the control plane counts as unreachable. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The control plane's HTTP API as the CLI uses it. Every failure becomes a `CliError`: an
 * `{error: {code, message}}` answer is a refusal (exit 3), no answer at all is unreachable
 * (exit 4). `fetch` is injected so commands can be tested without sockets.
 */
export class ApiClient {
  constructor(
    readonly connection: Connection,
    private readonly fetchFn: typeof fetch,
  ) {}

  async get<T>(path: string): Promise<T> {
    return (await this.request<T>("GET", path)).body;
  }

  async post<T>(path: string, body: unknown): Promise<ApiResponse<T>> {
    return await this.request<T>("POST", path, body);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const res = await this.send(method, path, {
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text().catch((err: unknown) => {
      throw this.unreachable(err);
    });
    try {
      return { status: res.status, body: (text === "" ? null : JSON.parse(text)) as T };
    } catch (err) {
      throw new CliError("refused", "bad_response", `${method} ${path} answered non-JSON`, {
        cause: err,
        status: res.status,
      });
    }
  }

  /** Reads an NDJSON stream (`?follow=1`), one parsed value per line, until the server ends it. */
  async *ndjson(path: string): AsyncGenerator<unknown> {
    const res = await this.send("GET", path, {});
    if (!res.body) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let partial = "";
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw this.unreachable(err);
      }
      if (chunk.done) break;
      const lines = (partial + chunk.value).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") yield JSON.parse(line);
    }
    if (partial.trim() !== "") yield JSON.parse(partial);
  }

  private async send(
    method: string,
    path: string,
    opts: { body?: unknown; signal?: AbortSignal },
  ): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.connection.token}` };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(`${this.connection.url}${path}`, {
        method,
        headers,
        ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (res.ok) return res;
    throw await refusal(res);
  }

  private unreachable(err: unknown): CliError {
    const why =
      err instanceof DOMException && err.name === "TimeoutError"
        ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
        : err instanceof Error
          ? err.message
          : String(err);
    return new CliError(
      "unreachable",
      "unreachable",
      `cannot reach the control plane at ${this.connection.url} (${why}); is it running? (npm start)`,
      { cause: err },
    );
  }
}

/** The API's `{error: {code, message, details}}`, or the status when the body is not one. */
async function refusal(res: Response): Promise<CliError> {
  const text = await res.text().catch(() => "");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } })
    ?.error;
  if (error && typeof error.code === "string" && typeof error.message === "string") {
    return new CliError("refused", error.code, error.message, {
      status: res.status,
      details: error.details,
    });
  }
  const snippet = text.trim().slice(0, 200) || res.statusText;
  return new CliError("refused", `http_${res.status}`, `${res.status} ${snippet}`, {
    status: res.status,
  });
}
