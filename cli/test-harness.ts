// Test support for the CLI's unit tests: runs the program against a fake API, in memory.
import type { Deps } from "./context.ts";
import { run } from "./program.ts";

export type Route = (req: Request, body: unknown) => Response | Promise<Response>;

export const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

export const apiError = (status: number, code: string, message: string): Response =>
  json({ error: { code, message } }, status);

export interface Harness {
  deps: Deps;
  /** Each request the CLI sent, with its parsed JSON body. */
  requests: { method: string; path: string; auth: string | null; body: unknown }[];
  run(...argv: string[]): Promise<number>;
  stdout(): string;
  stderr(): string;
}

export const T0 = Date.parse("2026-01-01T12:00:00Z");

/**
 * A CLI run against `route` (the fake control plane at http://cp.test), with FLEETSHIP_URL and
 * FLEETSHIP_TOKEN set unless `env` says otherwise; time only moves when the CLI sleeps.
 */
export function harness(
  route: Route,
  opts: { env?: Record<string, string>; files?: Record<string, string> } = {},
): Harness {
  const out: string[] = [];
  const err: string[] = [];
  const requests: Harness["requests"] = [];
  const env = opts.env ?? { FLEETSHIP_URL: "http://cp.test", FLEETSHIP_TOKEN: "tok" };
  let now = T0;
  const deps: Deps = {
    fetch: async (input, init) => {
      const req = new Request(input, init);
      const text = await req.clone().text();
      const body = text === "" ? undefined : JSON.parse(text);
      const url = new URL(req.url);
      requests.push({
        method: req.method,
        path: url.pathname + url.search,
        auth: req.headers.get("Authorization"),
        body,
      });
      return await route(req, body);
    },
    env: (name) => env[name],
    readTextFile: (path) => {
      const text = opts.files?.[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(text);
    },
    defaultLocalFile: "/repo/.data/local.json",
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    isTTY: false,
    now: () => now,
    sleep: (ms) => {
      now += ms;
      // A watch that never ends is a failed test, not a hung one.
      if (now - T0 > 3_600_000) return Promise.reject(new Error("the CLI waited over an hour"));
      return Promise.resolve();
    },
    pollMs: 1_000,
    unreachableGraceMs: 5_000,
  };
  return {
    deps,
    requests,
    run: (...argv) => run(argv, deps),
    stdout: () => out.join(""),
    stderr: () => err.join(""),
  };
}

/** Answers each call of `path` with the next of `responses` (the last one repeats). */
export function sequence(responses: (() => Response)[]): () => Response {
  let i = 0;
  return () => responses[Math.min(i++, responses.length - 1)]!();
}
