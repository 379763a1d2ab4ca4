/**
 * The agent's configuration, from flags and environment (a flag wins), typed once with a
 * documented default per field. Every problem is reported together.
 */
import { ConfigError, type FlagSpec, readFlags } from "../protocol/flags.ts";
import { parseLabels } from "../protocol/placement.ts";

export { ConfigError };

export interface Config {
  /** The control plane's base URL, for enrollment (and the public key if not provisioned). */
  url: string | null;
  /** The region's enrollment secret (FLEETSHIP_ENROLLMENT_SECRET); needed only until enrolled. */
  enrollmentSecret: string | null;
  /** A provisioned agent token (FLEETSHIP_AGENT_TOKEN); skips enrollment. */
  token: string | null;
  /** This machine's region. Required: --region or FLEETSHIP_REGION. */
  region: string;
  /** Default: the hostname (--machine-id, FLEETSHIP_MACHINE_ID). */
  machineId: string;
  /**
   * The machine's labels, which apps' placements match (--label k=v, repeatable, or
   * FLEETSHIP_LABELS=k=v,k2=v2). Default none: only apps placed on every machine run here.
   */
  labels: Record<string, string>;
  /** The region's relays, base URLs, in order of preference. Required (--relay, repeatable, or FLEETSHIP_RELAYS comma-separated). */
  relays: string[];
  /** Token, Deno KV, releases, partial downloads. Default /var/lib/fleetship-agent (--state-dir). */
  stateDir: string;
  /** The control plane's public key (base64). Default: fetched once from /v1/signing-key and kept in the state dir, with a warning. */
  publicKey: string | null;
  /** Releases kept per app, the running one included. Default 3 (--keep-releases, at least 2). */
  keepReleases: number;
  /**
   * Apps listen on $PORT. Without --app-port-base, PORT is the port of the app's http health
   * check (one agent per machine: the app's declared port), else 20000 + the app's slot. With
   * it, PORT is base + the app's slot (several agents on one host, tests). Slots are assigned
   * in the order apps are first seen and kept in Deno KV.
   */
  appPortBase: number | null;
  /** How long a new release has to pass its health check. Default 30 s (--health-timeout-s). */
  healthTimeoutMs: number;
  /**
   * After a release that passed its health gate crashed: how long a restarted process must stay
   * healthy before the app is reported healthy again. Default 30 s (--healthy-settle-s).
   */
  settleMs: number;
  /** Chunk downloads in flight per app. Default 4 (--download-concurrency). */
  downloadConcurrency: number;
  /**
   * Of those, chunks the tracker asked this agent to seed (fetched from the relay) at once; the
   * rest go to peers. Default half the download concurrency, at least 1 (--seed-slots).
   */
  seedSlots: number;
  /** The mesh's listening port (--peer-port; 0: any free port). Default null: no mesh, relay only. */
  peerPort: number | null;
  /** Address the peer listener binds, and peers are told (unless 0.0.0.0: then the hostname). Default 0.0.0.0 (--peer-host). */
  peerHost: string;
  /** Peer connections kept. Default 12 (--max-peers). */
  maxPeers: number;
  /** Pieces sent to peers at once. Default 8 (--upload-slots). */
  uploadSlots: number;
  /** Bytes per second received (peers and relay), null for no limit (--download-limit-mib-s). */
  downloadLimit: number | null;
  /** Bytes per second sent to peers, null for no limit (--upload-limit-mib-s). */
  uploadLimit: number | null;
  /** How long a request to a peer may take before it is asked elsewhere. Default 10 s (--peer-timeout-ms). */
  peerTimeoutMs: number;
  /** How long a chunk no peer holds waits for one to get it before the relay is asked. Default 2 s (--relay-grace-ms). */
  relayGraceMs: number;
}

export const USAGE = `fleetship-agent --region REGION --relay URL [--relay URL ...] [options]

  --url URL                  control plane, for enrollment (FLEETSHIP_URL)
  --enrollment-secret S      (FLEETSHIP_ENROLLMENT_SECRET; prefer the environment)
  --token TOKEN              a provisioned agent token (FLEETSHIP_AGENT_TOKEN); skips enrollment
  --region NAME              (FLEETSHIP_REGION)
  --machine-id ID            (FLEETSHIP_MACHINE_ID; default the hostname)
  --relay URL                a relay of the region; repeat for failover (FLEETSHIP_RELAYS=a,b)
  --label KEY=VALUE          a label placements match, e.g. pool=web; repeatable (FLEETSHIP_LABELS=a=1,b=2)
  --state-dir DIR            (FLEETSHIP_AGENT_STATE_DIR; default /var/lib/fleetship-agent)
  --public-key KEY           control plane's public key (FLEETSHIP_PUBLIC_KEY; default: fetched once)
  --keep-releases N          releases kept per app (default 3)
  --app-port-base N          PORT = N + the app's slot (FLEETSHIP_APP_PORT_BASE)
  --health-timeout-s S       deadline for a new release's health check (default 30)
  --healthy-settle-s S       after a crash, how long a restarted app stays healthy before it counts (default 30)
  --download-concurrency N   chunk downloads in flight per app (default 4)
  --seed-slots N             of those, chunks the relay's tracker asked this agent to seed (default half)
  --peer-port N              serve and fetch pieces among peers on this port (0: any; default: no mesh)
  --peer-host HOST           bind and advertise address for peers (default 0.0.0.0, advertised as the hostname)
  --max-peers N              peer connections kept (default 12)
  --upload-slots N           pieces sent to peers at once (default 8)
  --download-limit-mib-s X   download rate limit, MiB/s (default none)
  --upload-limit-mib-s X     upload rate limit to peers, MiB/s (default none)
  --peer-timeout-ms N        a request to a peer not answered by then goes elsewhere (default 10000)
  --relay-grace-ms N         a chunk no peer holds waits this long for one before the relay (default 2000)
  --help`;

const OPTIONS = {
  url: { type: "string" },
  "enrollment-secret": { type: "string" },
  token: { type: "string" },
  region: { type: "string" },
  "machine-id": { type: "string" },
  relay: { type: "string", multiple: true },
  label: { type: "string", multiple: true },
  "state-dir": { type: "string" },
  "public-key": { type: "string" },
  "keep-releases": { type: "string" },
  "app-port-base": { type: "string" },
  "health-timeout-s": { type: "string" },
  "healthy-settle-s": { type: "string" },
  "download-concurrency": { type: "string" },
  "seed-slots": { type: "string" },
  "peer-port": { type: "string" },
  "peer-host": { type: "string" },
  "max-peers": { type: "string" },
  "upload-slots": { type: "string" },
  "download-limit-mib-s": { type: "string" },
  "upload-limit-mib-s": { type: "string" },
  "peer-timeout-ms": { type: "string" },
  "relay-grace-ms": { type: "string" },
  help: { type: "boolean" },
} as const satisfies FlagSpec;

const MACHINE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const REGION = /^[a-z][a-z0-9-]{1,30}$/;

export function parseConfig(
  args: string[],
  env: Record<string, string>,
  hostname: string,
): Config | "help" {
  const { values, problems } = readFlags(args, OPTIONS);
  if (values.help) return "help";
  const pick = (flag: Exclude<keyof typeof OPTIONS, "relay" | "label" | "help">, name: string) => {
    const value = values[flag];
    return typeof value === "string" ? value : env[name] || undefined;
  };
  const int = (
    raw: string | undefined,
    fallback: number,
    name: string,
    min: number,
    max: number,
  ) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };

  const url = pick("url", "FLEETSHIP_URL")?.replace(/\/+$/, "") ?? null;
  if (url !== null && !/^https?:\/\/[^/]+/.test(url))
    problems.push("--url: must be an http(s) URL");
  const region = pick("region", "FLEETSHIP_REGION") ?? "";
  if (!REGION.test(region))
    problems.push(`--region: ${JSON.stringify(region)} is not a region name`);
  const machineId = pick("machine-id", "FLEETSHIP_MACHINE_ID") ?? hostname;
  if (!MACHINE_ID.test(machineId))
    problems.push(`--machine-id: ${JSON.stringify(machineId)} must match ${MACHINE_ID}`);
  const relays = (values.relay?.length ? values.relay : (env.FLEETSHIP_RELAYS ?? "").split(","))
    .map((r) => r.trim().replace(/\/+$/, ""))
    .filter((r) => r.length > 0);
  if (relays.length === 0) problems.push("at least one --relay (or FLEETSHIP_RELAYS) is required");
  for (const r of relays)
    if (!/^https?:\/\/[^/]+$/.test(r))
      problems.push(`--relay: ${JSON.stringify(r)} must be an http(s) base URL`);
  const labelItems = values.label?.length
    ? values.label
    : (env.FLEETSHIP_LABELS ?? "").split(",").filter((l) => l.trim().length > 0);
  const parsedLabels = parseLabels(labelItems);
  if (!parsedLabels.ok) problems.push(`--label: ${parsedLabels.problem}`);
  const token = pick("token", "FLEETSHIP_AGENT_TOKEN") ?? null;
  const enrollmentSecret = pick("enrollment-secret", "FLEETSHIP_ENROLLMENT_SECRET") ?? null;
  if (enrollmentSecret !== null && url === null)
    problems.push("enrollment needs --url (the control plane)");
  const base = pick("app-port-base", "FLEETSHIP_APP_PORT_BASE");
  const peerPort = pick("peer-port", "FLEETSHIP_PEER_PORT");
  const downloadConcurrency = int(
    pick("download-concurrency", "FLEETSHIP_DOWNLOAD_CONCURRENCY"),
    4,
    "--download-concurrency",
    1,
    64,
  );
  const rate = (raw: string | undefined, name: string): number | null => {
    if (raw === undefined) return null;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || n > 1e6) {
      problems.push(`${name}: expected MiB/s in (0, 1e6], got ${JSON.stringify(raw)}`);
      return null;
    }
    return n * 1024 * 1024;
  };
  const config: Config = {
    url,
    enrollmentSecret,
    token,
    region,
    machineId,
    labels: parsedLabels.ok ? parsedLabels.labels : {},
    relays,
    stateDir: pick("state-dir", "FLEETSHIP_AGENT_STATE_DIR") ?? "/var/lib/fleetship-agent",
    publicKey: pick("public-key", "FLEETSHIP_PUBLIC_KEY") ?? null,
    keepReleases: int(
      pick("keep-releases", "FLEETSHIP_KEEP_RELEASES"),
      3,
      "--keep-releases",
      2,
      100,
    ),
    appPortBase: base === undefined ? null : int(base, 0, "--app-port-base", 1, 65000),
    healthTimeoutMs:
      int(
        pick("health-timeout-s", "FLEETSHIP_HEALTH_TIMEOUT_S"),
        30,
        "--health-timeout-s",
        1,
        3600,
      ) * 1000,
    settleMs:
      int(
        pick("healthy-settle-s", "FLEETSHIP_HEALTHY_SETTLE_S"),
        30,
        "--healthy-settle-s",
        0,
        3600,
      ) * 1000,
    downloadConcurrency,
    seedSlots: int(
      pick("seed-slots", "FLEETSHIP_SEED_SLOTS"),
      Math.max(1, Math.floor(downloadConcurrency / 2)),
      "--seed-slots",
      1,
      64,
    ),
    peerPort: peerPort === undefined ? null : int(peerPort, 0, "--peer-port", 0, 65535),
    peerHost: pick("peer-host", "FLEETSHIP_PEER_HOST") ?? "0.0.0.0",
    maxPeers: int(pick("max-peers", "FLEETSHIP_MAX_PEERS"), 12, "--max-peers", 1, 64),
    uploadSlots: int(pick("upload-slots", "FLEETSHIP_UPLOAD_SLOTS"), 8, "--upload-slots", 1, 256),
    downloadLimit: rate(
      pick("download-limit-mib-s", "FLEETSHIP_DOWNLOAD_LIMIT_MIB_S"),
      "--download-limit-mib-s",
    ),
    uploadLimit: rate(
      pick("upload-limit-mib-s", "FLEETSHIP_UPLOAD_LIMIT_MIB_S"),
      "--upload-limit-mib-s",
    ),
    peerTimeoutMs: int(
      pick("peer-timeout-ms", "FLEETSHIP_PEER_TIMEOUT_MS"),
      10_000,
      "--peer-timeout-ms",
      100,
      600_000,
    ),
    relayGraceMs: int(
      pick("relay-grace-ms", "FLEETSHIP_RELAY_GRACE_MS"),
      2_000,
      "--relay-grace-ms",
      0,
      600_000,
    ),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
