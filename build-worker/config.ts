/**
 * The build worker's configuration, from flags and environment (a flag wins), typed once with a
 * documented default per field. Every problem is reported together.
 */
import { ConfigError, type FlagSpec, readFlags } from "../protocol/flags.ts";
import {
  CHUNKER_ALGORITHM,
  type ChunkerParams,
  chunkerParamsProblems,
  DEFAULT_CHUNKER_PARAMS,
} from "../protocol/index.ts";

export interface Config {
  /** The control plane's base URL. Required: --url or FLEETSHIP_URL. */
  url: string;
  /**
   * A builder token. Required: FLEETSHIP_BUILDER_TOKEN, or --token (visible to `ps`: prefer the
   * environment). Never passed on to build commands.
   */
  token: string;
  /**
   * Repository mirrors and per-attempt checkouts; one worker process per workspace. Default
   * $TMPDIR/fleetship-build-worker (--workspace, FLEETSHIP_WORKSPACE).
   */
  workspace: string;
  /** Builds run at once. Default 1 (--slots, FLEETSHIP_BUILD_SLOTS). */
  slots: number;
  /** Names this worker to the control plane. Default <hostname>-<pid> (--worker-id, FLEETSHIP_WORKER_ID). */
  workerId: string;
  /** After SIGTERM/SIGINT, how long running builds may go on. Default 60 s (--grace-s). */
  graceMs: number;
  /** Chunk sizes. Default 1 MiB / 4 MiB / 16 MiB (--chunk-sizes MIN,AVG,MAX, e.g. 16k,64k,256k). */
  chunker: ChunkerParams;
  /** Chunk uploads in flight per build. Default 4 (--upload-concurrency). */
  uploadConcurrency: number;
  /** How long one claim long-polls, 0-30 s. Default 20 (--claim-wait-s). */
  claimWaitS: number;
}

export { ConfigError };

export const USAGE = `deno task build-worker --url URL [options]   (token in FLEETSHIP_BUILDER_TOKEN)

  --url URL                    control plane (FLEETSHIP_URL)
  --token TOKEN                builder token (FLEETSHIP_BUILDER_TOKEN; prefer the environment)
  --workspace DIR              mirrors and checkouts (FLEETSHIP_WORKSPACE; default $TMPDIR/fleetship-build-worker)
  --slots N                    concurrent builds (FLEETSHIP_BUILD_SLOTS; default 1)
  --worker-id ID               (FLEETSHIP_WORKER_ID; default <hostname>-<pid>)
  --grace-s S                  after SIGTERM, how long builds may finish (default 60)
  --chunk-sizes MIN,AVG,MAX    chunker sizes in bytes, k/m suffixes allowed (default 1m,4m,16m)
  --upload-concurrency N       chunk uploads in flight per build (default 4)
  --claim-wait-s S             claim long-poll, 0-30 (default 20)
  --help`;

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  workspace: { type: "string" },
  slots: { type: "string" },
  "worker-id": { type: "string" },
  "grace-s": { type: "string" },
  "chunk-sizes": { type: "string" },
  "upload-concurrency": { type: "string" },
  "claim-wait-s": { type: "string" },
  help: { type: "boolean" },
} as const satisfies FlagSpec;

const WORKER_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface Host {
  hostname: string;
  pid: number;
  tmpdir: string;
}

/** The configuration, or "help" when --help was asked for. Throws ConfigError. */
export function parseConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  host: Host,
): Config | "help" {
  const { values, problems } = readFlags(args, OPTIONS);
  if (values.help === true) return "help";

  const str = (flag: keyof typeof OPTIONS, envName?: string): string | undefined => {
    const v = values[flag];
    if (typeof v === "string" && v !== "") return v;
    const e = envName ? env[envName] : undefined;
    return e === undefined || e === "" ? undefined : e;
  };
  const int = (
    flag: keyof typeof OPTIONS,
    envName: string | undefined,
    range: [number, number],
    fallback: number,
  ) => {
    const raw = str(flag, envName);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < range[0] || n > range[1]) {
      const from = envName && values[flag] === undefined ? envName : `--${flag}`;
      problems.push(
        `${from} must be an integer in [${range[0]}, ${range[1]}], got ${JSON.stringify(raw)}`,
      );
      return fallback;
    }
    return n;
  };

  const url = str("url", "FLEETSHIP_URL") ?? "";
  if (!url) problems.push("the control plane URL is required: --url or FLEETSHIP_URL");
  else if (!/^https?:\/\/[^/]/.test(url)) {
    problems.push(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  const token = str("token", "FLEETSHIP_BUILDER_TOKEN") ?? "";
  if (!token) problems.push("a builder token is required: FLEETSHIP_BUILDER_TOKEN or --token");

  const workerId = str("worker-id", "FLEETSHIP_WORKER_ID") ?? defaultWorkerId(host);
  if (!WORKER_ID.test(workerId)) {
    problems.push(
      `--worker-id must be 1-128 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(workerId)}`,
    );
  }

  const config: Config = {
    url: url.replace(/\/+$/, ""),
    token,
    workspace: (
      str("workspace", "FLEETSHIP_WORKSPACE") ?? `${host.tmpdir}/fleetship-build-worker`
    ).replace(/\/+$/, ""),
    slots: int("slots", "FLEETSHIP_BUILD_SLOTS", [1, 64], 1),
    workerId,
    graceMs: int("grace-s", undefined, [0, 24 * 3600], 60) * 1000,
    chunker: parseChunkSizes(str("chunk-sizes"), problems),
    uploadConcurrency: int("upload-concurrency", undefined, [1, 64], 4),
    claimWaitS: int("claim-wait-s", undefined, [0, 30], 20),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** <hostname>-<pid>, with characters the API refuses replaced. */
export function defaultWorkerId(host: Host): string {
  const name = host.hostname.replace(/[^A-Za-z0-9._:-]/g, "-").slice(0, 100) || "worker";
  return `${name}-${host.pid}`;
}

function parseChunkSizes(raw: string | undefined, problems: string[]): ChunkerParams {
  if (raw === undefined) return DEFAULT_CHUNKER_PARAMS;
  const sizes = raw.split(",").map(parseSize);
  const [min, avg, max] = sizes;
  if (sizes.length !== 3 || min === undefined || avg === undefined || max === undefined) {
    problems.push(
      `--chunk-sizes must be MIN,AVG,MAX in bytes (k/m suffixes), got ${JSON.stringify(raw)}`,
    );
    return DEFAULT_CHUNKER_PARAMS;
  }
  const params: ChunkerParams = {
    algorithm: CHUNKER_ALGORITHM,
    min_size: min,
    avg_size: avg,
    max_size: max,
    normalization: DEFAULT_CHUNKER_PARAMS.normalization,
  };
  const wrong = chunkerParamsProblems(params);
  for (const p of wrong) problems.push(`--chunk-sizes: ${p}`);
  return wrong.length === 0 ? params : DEFAULT_CHUNKER_PARAMS;
}

/** "65536", "64k", "4m" (binary units) to bytes; undefined when malformed. */
function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) return undefined;
  const unit = m[2]?.toLowerCase() === "k" ? 1024 : m[2]?.toLowerCase() === "m" ? 1024 * 1024 : 1;
  return Number(m[1]) * unit;
}
