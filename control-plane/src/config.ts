import type { Env } from "./env.ts";

/** Typed configuration, parsed once from the bindings; every problem is reported together. */
export interface Config {
  /** Region names in order; the first is the primary. Default: us-east,eu-west,ap-south. */
  regions: string[];
  /** libSQL URL (http:// or https://; libsql:// is rewritten to https://). Required. */
  libsqlUrl: string;
  /** libSQL bearer token. Default: none (the local server needs none). */
  libsqlAuthToken: string | undefined;
  /** A build's lease; a worker heartbeats every lease/4. Default 60 s. */
  leaseMs: number;
  /** A running build past this is FAILED(timeout). Default 20 min. */
  buildTimeoutMs: number;
  /** Attempts before a lost build is FAILED(lost). Default 3. */
  maxAttempts: number;
  /** Pepper mixed into token hashes. Default: a fixed local-only value (warned about). */
  tokenPepper: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n- ${problems.join("\n- ")}`);
  }
}

const REGION = /^[a-z][a-z0-9-]{1,30}$/;
export const LOCAL_PEPPER = "local-development-pepper";

function positiveInt(
  raw: string | undefined,
  fallback: number,
  name: string,
  problems: string[],
): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    problems.push(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    return fallback;
  }
  return n;
}

export function bucketBinding(region: string): `BUCKET_${string}` {
  return `BUCKET_${region.toUpperCase().replaceAll("-", "_")}`;
}

export function parseConfig(env: Env): Config {
  const problems: string[] = [];
  const regions = (env.REGIONS ?? "us-east,eu-west,ap-south")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  if (regions.length === 0) problems.push("REGIONS must name at least one region");
  for (const region of regions) {
    if (!REGION.test(region))
      problems.push(`REGIONS: ${JSON.stringify(region)} is not a region name`);
    else if (!env[bucketBinding(region)]) {
      problems.push(`region ${region} has no R2 binding ${bucketBinding(region)} in wrangler.toml`);
    }
  }
  let libsqlUrl = env.LIBSQL_URL ?? "";
  if (libsqlUrl.startsWith("libsql://"))
    libsqlUrl = `https://${libsqlUrl.slice("libsql://".length)}`;
  if (!/^https?:\/\/./.test(libsqlUrl)) {
    problems.push(
      `LIBSQL_URL must be an http(s):// or libsql:// URL, got ${JSON.stringify(env.LIBSQL_URL ?? "")}`,
    );
  }
  const config: Config = {
    regions,
    libsqlUrl,
    libsqlAuthToken: env.LIBSQL_AUTH_TOKEN || undefined,
    leaseMs: positiveInt(env.LEASE_MS, 60_000, "LEASE_MS", problems),
    buildTimeoutMs: positiveInt(env.BUILD_TIMEOUT_MS, 20 * 60_000, "BUILD_TIMEOUT_MS", problems),
    maxAttempts: positiveInt(env.MAX_ATTEMPTS, 3, "MAX_ATTEMPTS", problems),
    tokenPepper: env.TOKEN_PEPPER || LOCAL_PEPPER,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
