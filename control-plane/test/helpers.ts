import { env, exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { newToken } from "../src/auth/token-format.ts";
import { parseConfig } from "../src/config.ts";
import { openDb } from "../src/db/client.ts";
import { type Role, tokens } from "../src/db/schema.ts";
import type { Env } from "../src/env.ts";

export const testEnv = env as unknown as Env;
export const config = parseConfig(testEnv);
export const db = openDb(config);

// Children before parents: the server enforces foreign keys.
const TABLES = [
  "deployments",
  "audit_log",
  "build_logs",
  "builds",
  "applications",
  "tokens",
  "counters",
  "chunks",
  "chunk_replicas",
  "replications",
  "replication_batches",
];

/** Empties every table: the database is shared by the project's files, which run one at a time. */
export async function resetDb(): Promise<void> {
  await db.batch(
    TABLES.map((t) => db.run(sql.raw(`DELETE FROM ${t}`))) as [
      ReturnType<typeof db.run>,
      ...ReturnType<typeof db.run>[],
    ],
  );
}

/** Every row of every table, to prove a refused request changed nothing. */
export async function snapshot(): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const t of TABLES)
    out[t] = (await db.all(sql.raw(`SELECT * FROM ${t} ORDER BY rowid`))) as unknown[];
  return out;
}

export async function mintToken(
  role: Role,
  opts: { region?: string; name?: string } = {},
): Promise<string> {
  const t = await newToken(config.tokenPepper);
  await db.insert(tokens).values({
    id: t.id,
    name: opts.name ?? `test-${role}`,
    role,
    region: opts.region ?? null,
    secretHash: t.secretHash,
  });
  return t.token;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface CallResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** Calls the Worker's own fetch handler, as a client would over HTTP. */
export async function call<T = any>(
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<CallResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body: BodyInit | undefined;
  if (opts.body instanceof Uint8Array) {
    body = opts.body;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] ??= "application/json";
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  }
  const res = await (exports as any).default.fetch(`http://cp.test${path}`, {
    method,
    headers,
    body,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (metrics, docs): keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}
