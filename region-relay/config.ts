/**
 * The relay's configuration, from flags and environment (a flag wins), typed once with a
 * documented default per field. Every problem is reported together.
 */
import { ConfigError, type FlagSpec, readFlags } from "../protocol/flags.ts";

export { ConfigError };

export interface Config {
  /** The control plane's base URL. Required: --url or FLEETSHIP_URL. */
  url: string;
  /** A relay token of `region`. Required: FLEETSHIP_RELAY_TOKEN (or --token, visible to `ps`). */
  token: string;
  /** The region this relay serves. Required: --region or FLEETSHIP_REGION. */
  region: string;
  /** Names this relay to the control plane and agents. Default <hostname>-<port>. */
  relayId: string;
  /** Listen address. Default 0.0.0.0 (--hostname, FLEETSHIP_RELAY_HOSTNAME). */
  hostname: string;
  /** Listen port. Default 7070 (--port, FLEETSHIP_RELAY_PORT); 0 picks a free one. */
  port: number;
  /**
   * The URL agents use, reported to the control plane. Default http://<hostname>:<port>
   * (--public-url, FLEETSHIP_RELAY_PUBLIC_URL).
   */
  publicUrl: string | null;
  /** Chunk cache, manifests and the relay's Deno KV database. Default $TMPDIR/fleetship-relay-<relay id>. */
  cacheDir: string;
  /** Chunk cache budget in bytes (k/m/g suffixes). Default 10g (--cache-max-bytes). */
  cacheMaxBytes: number;
  /**
   * The control plane's public key (base64). Default: fetched once from /v1/signing-key at
   * start, with a warning (--public-key, FLEETSHIP_PUBLIC_KEY).
   */
  publicKey: string | null;
  /** How long a checked agent token is trusted before it is checked again. Default 300 s. */
  tokenTtlMs: number;
  /** Upstream chunk reads in flight at once. Default 8 (--upstream-concurrency). */
  upstreamConcurrency: number;
  /**
   * Agent connections held at once; past it a new one gets 503 and its agent fails over to
   * the region's next relay. Default 10,000 (--max-agents).
   */
  maxAgents: number;
  /**
   * Chunks served at once to mesh agents that could wait for a peer (`?fallback=1`); past it
   * such a request gets 503 relay_busy and its agent asks peers again. Seeding and relay-only
   * fetches are never refused. Default 32 (--fallback-slots).
   */
  fallbackSlots: number;
  /**
   * What the relay reports upstream: `summary` (per-app counts and a sample of problem
   * machines; step 12) or `list` (every machine, as relays before step 12 did: what an older
   * control plane understands, and bench/fanout's baseline). Default summary (--status-format).
   */
  statusFormat: "summary" | "list";
}

export const USAGE = `deno task region-relay --url URL --region REGION [options]   (token in FLEETSHIP_RELAY_TOKEN)

  --url URL                  control plane (FLEETSHIP_URL)
  --token TOKEN              relay token of the region (FLEETSHIP_RELAY_TOKEN; prefer the environment)
  --region NAME              (FLEETSHIP_REGION)
  --relay-id ID              (FLEETSHIP_RELAY_ID; default <hostname>-<port>)
  --hostname ADDR            listen address (FLEETSHIP_RELAY_HOSTNAME; default 0.0.0.0)
  --port N                   listen port (FLEETSHIP_RELAY_PORT; default 7070)
  --public-url URL           how agents reach this relay (FLEETSHIP_RELAY_PUBLIC_URL)
  --cache-dir DIR            chunk cache and state (FLEETSHIP_RELAY_CACHE_DIR)
  --cache-max-bytes N        cache budget, k/m/g suffixes (FLEETSHIP_RELAY_CACHE_MAX_BYTES; default 10g)
  --public-key KEY           control plane's public key (FLEETSHIP_PUBLIC_KEY; default: fetched once)
  --token-ttl-s S            how long a checked agent token is trusted (default 300)
  --upstream-concurrency N   chunk reads from the control plane in flight (default 8)
  --max-agents N             agent connections held at once, past it 503 (default 10000)
  --fallback-slots N         chunks served at once to mesh agents that can wait for a peer (default 32)
  --status-format F          summary (per-app counts; default) or list (every machine, as before step 12)
  --help`;

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  region: { type: "string" },
  "relay-id": { type: "string" },
  hostname: { type: "string" },
  port: { type: "string" },
  "public-url": { type: "string" },
  "cache-dir": { type: "string" },
  "cache-max-bytes": { type: "string" },
  "public-key": { type: "string" },
  "token-ttl-s": { type: "string" },
  "upstream-concurrency": { type: "string" },
  "max-agents": { type: "string" },
  "fallback-slots": { type: "string" },
  "status-format": { type: "string" },
  help: { type: "boolean" },
} as const satisfies FlagSpec;

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const REGION = /^[a-z][a-z0-9-]{1,30}$/;

export interface Host {
  hostname: string;
  tmpdir: string;
}

/** The configuration, "help", or a ConfigError listing every problem. */
export function parseConfig(
  args: string[],
  env: Record<string, string>,
  host: Host,
): Config | "help" {
  const { values, problems } = readFlags(args, OPTIONS);
  if (values.help) return "help";
  const pick = (flag: keyof typeof OPTIONS, name: string): string | undefined => {
    const value = values[flag];
    return typeof value === "string" ? value : env[name] || undefined;
  };

  const url = (pick("url", "FLEETSHIP_URL") ?? "").replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+/.test(url))
    problems.push("--url: an http(s) URL of the control plane is required");
  const token = pick("token", "FLEETSHIP_RELAY_TOKEN") ?? "";
  if (!token) problems.push("a relay token is required (FLEETSHIP_RELAY_TOKEN or --token)");
  const region = pick("region", "FLEETSHIP_REGION") ?? "";
  if (!REGION.test(region))
    problems.push(`--region: ${JSON.stringify(region)} is not a region name`);
  const port = integer(pick("port", "FLEETSHIP_RELAY_PORT"), 7070, "--port", problems, 0, 65535);
  const relayId = pick("relay-id", "FLEETSHIP_RELAY_ID") ?? `${host.hostname}-${port}`;
  if (!ID.test(relayId)) problems.push(`--relay-id: ${JSON.stringify(relayId)} must match ${ID}`);
  const publicUrl = pick("public-url", "FLEETSHIP_RELAY_PUBLIC_URL") ?? null;
  if (publicUrl !== null && !/^https?:\/\/[^/]+/.test(publicUrl)) {
    problems.push("--public-url: must be an http(s) URL");
  }
  const cacheMaxBytes = byteSize(
    pick("cache-max-bytes", "FLEETSHIP_RELAY_CACHE_MAX_BYTES"),
    10 * 1024 ** 3,
    problems,
  );
  const statusFormat = pick("status-format", "FLEETSHIP_RELAY_STATUS_FORMAT") ?? "summary";
  if (statusFormat !== "summary" && statusFormat !== "list")
    problems.push(`--status-format: expected summary or list, got ${JSON.stringify(statusFormat)}`);
  const config: Config = {
    url,
    token,
    region,
    relayId,
    hostname: pick("hostname", "FLEETSHIP_RELAY_HOSTNAME") ?? "0.0.0.0",
    port,
    publicUrl,
    cacheDir:
      pick("cache-dir", "FLEETSHIP_RELAY_CACHE_DIR") ?? `${host.tmpdir}/fleetship-relay-${relayId}`,
    cacheMaxBytes,
    publicKey: pick("public-key", "FLEETSHIP_PUBLIC_KEY") ?? null,
    tokenTtlMs:
      integer(
        pick("token-ttl-s", "FLEETSHIP_RELAY_TOKEN_TTL_S"),
        300,
        "--token-ttl-s",
        problems,
        1,
      ) * 1000,
    upstreamConcurrency: integer(
      pick("upstream-concurrency", "FLEETSHIP_RELAY_UPSTREAM_CONCURRENCY"),
      8,
      "--upstream-concurrency",
      problems,
      1,
      256,
    ),
    maxAgents: integer(
      pick("max-agents", "FLEETSHIP_RELAY_MAX_AGENTS"),
      10_000,
      "--max-agents",
      problems,
      1,
      1_000_000,
    ),
    fallbackSlots: integer(
      pick("fallback-slots", "FLEETSHIP_RELAY_FALLBACK_SLOTS"),
      32,
      "--fallback-slots",
      problems,
      1,
      100_000,
    ),
    statusFormat: statusFormat === "list" ? "list" : "summary",
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

function integer(
  raw: string | undefined,
  fallback: number,
  name: string,
  problems: string[],
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    problems.push(`${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
    return fallback;
  }
  return n;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Bytes from `123`, `64k`, `512m`, `10g` (binary units). */
export function byteSize(raw: string | undefined, fallback: number, problems: string[]): number {
  if (raw === undefined) return fallback;
  const m = /^(\d+)([kmgt]?)i?b?$/i.exec(raw.trim());
  const n = m ? Number(m[1]) * (UNITS[m[2]!.toLowerCase()] ?? 1) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1024 * 1024) {
    problems.push(
      `--cache-max-bytes: expected at least 1m (k/m/g suffixes), got ${JSON.stringify(raw)}`,
    );
    return fallback;
  }
  return n;
}
