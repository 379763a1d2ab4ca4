/**
 * The agent (DESIGN sections 2, 8), one per machine: enrolls once, holds a WebSocket to one of
 * its region's relays (failing over to the next), and for every app of the region's goal
 * converges: verify, download, install, switch, run, health-check, roll back locally on failure.
 * Apps it applied keep running whatever happens upstream. The one composition root: reads the
 * configuration, builds the parts, runs until SIGTERM/SIGINT (which stop the apps, then exit 0).
 *
 *   FLEETSHIP_ENROLLMENT_SECRET=… deno task agent --url http://127.0.0.1:8787 --region us-east \
 *     --relay http://127.0.0.1:7070 --state-dir /var/lib/fleetship-agent
 *
 * The same file is the entry point of `deno task compile` (a self-contained binary).
 */
import { usageError } from "../protocol/flags.ts";
import { Verifier } from "../protocol/signing.ts";
import { Agent } from "./agent.ts";
import { AgentState } from "./agent-state.ts";
import { ConfigError, parseConfig, USAGE } from "./config.ts";
import { EnrollmentError, enrolledToken, trustedPublicKey } from "./enroll.ts";
import { jsonLogger } from "./log.ts";
import { Mesh } from "./mesh.ts";
import { servePeers } from "./peer-server.ts";
import { RelayClient } from "./relay-client.ts";
import { RelayLink } from "./relay-link.ts";
import { TokenBucket } from "./token-bucket.ts";

/** What of the agent's environment an app sees (its token and secrets never). */
const APP_ENV_NAMES = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "TMPDIR",
];

const logger = jsonLogger((line) => console.log(line));

let parsed: ReturnType<typeof parseConfig>;
try {
  parsed = parseConfig(Deno.args, Deno.env.toObject(), Deno.hostname());
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  logger.log("error", "config:invalid", { problems: err.problems });
  console.error(usageError("fleetship-agent", err.problems, USAGE));
  Deno.exit(2);
}
if (parsed === "help") {
  console.log(USAGE);
  Deno.exit(0);
}
const config = parsed;
const stop = new AbortController();
const onSignal = (signal: Deno.Signal) => () => {
  if (stop.signal.aborted) return;
  logger.log("info", "agent:stopping", { signal });
  stop.abort();
};
for (const signal of ["SIGTERM", "SIGINT"] as const)
  Deno.addSignalListener(signal, onSignal(signal));

await Deno.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
let token: string;
let publicKey: string;
try {
  token =
    config.token ??
    (await enrolledToken({
      stateDir: config.stateDir,
      url: config.url,
      secret: config.enrollmentSecret,
      region: config.region,
      machineId: config.machineId,
      logger,
      signal: stop.signal,
    }));
  publicKey = await trustedPublicKey({
    stateDir: config.stateDir,
    provided: config.publicKey,
    url: config.url,
    logger,
  });
} catch (err) {
  if (stop.signal.aborted) Deno.exit(0);
  if (!(err instanceof EnrollmentError)) throw err;
  logger.log("error", "config:invalid", { problems: [err.message] });
  Deno.exit(2);
}
const verifier = await Verifier.fromPublicKeys(publicKey);
const kv = await Deno.openKv(`${config.stateDir}/agent.kv`);
const env = Deno.env.toObject();
const baseEnv = Object.fromEntries(
  APP_ENV_NAMES.flatMap((n) => (env[n] === undefined ? [] : [[n, env[n]]])),
);
baseEnv.PATH ??= "/usr/local/bin:/usr/bin:/bin";

let link: RelayLink | null = null;
const relays = new RelayClient({
  relays: config.relays,
  token,
  preferred: () => link?.current ?? null,
});
// The mesh (DESIGN section 8) when --peer-port is set; a rate-limited relay-only source when
// only a download limit is; else the relay client as in step 6.
const bucket = (rate: number | null) => (rate === null ? undefined : new TokenBucket(rate));
const downloadLimit = bucket(config.downloadLimit);
const uploadLimit = bucket(config.uploadLimit);
const mesh =
  config.peerPort !== null || downloadLimit
    ? new Mesh({
        machineId: config.machineId,
        relay: relays,
        sendToRelay: (frame) => link?.sendFrame(frame) ?? false,
        logger,
        peers: config.peerPort !== null,
        maxPeers: config.maxPeers,
        uploadSlots: config.uploadSlots,
        seedSlots: config.seedSlots,
        requestTimeoutMs: config.peerTimeoutMs,
        relayGraceMs: config.relayGraceMs,
        // Tests only (tests/mesh.test.ts): this agent serves its peers wrong bytes, or takes
        // their requests and never answers.
        corruptUploads: Deno.env.get("FLEETSHIP_TEST_CORRUPT_UPLOADS") === "1",
        stallUploads: Deno.env.get("FLEETSHIP_TEST_STALL_UPLOADS") === "1",
        ...(downloadLimit ? { downloadLimit } : {}),
        ...(uploadLimit ? { uploadLimit } : {}),
      })
    : null;
let peerUrl: string | null = null;
if (mesh && config.peerPort !== null) {
  const server = servePeers(mesh, {
    hostname: config.peerHost,
    port: config.peerPort,
    signal: stop.signal,
  });
  const host = config.peerHost === "0.0.0.0" ? Deno.hostname() : config.peerHost;
  peerUrl = `ws://${host}:${server.addr.port}/v1/peer`;
  logger.log("info", "mesh:listening", { port: server.addr.port, peer_url: peerUrl });
}
let statusTimer: ReturnType<typeof setTimeout> | undefined;
const agent = new Agent({
  machineId: config.machineId,
  region: config.region,
  labels: config.labels,
  stateDir: config.stateDir,
  state: new AgentState(kv),
  verifier,
  logger,
  manifests: relays,
  source: mesh ?? relays,
  keepReleases: config.keepReleases,
  healthTimeoutMs: config.healthTimeoutMs,
  settleMs: config.settleMs,
  downloadConcurrency: config.downloadConcurrency,
  appPortBase: config.appPortBase,
  baseEnv: { ...baseEnv, FLEETSHIP_MACHINE_ID: config.machineId, FLEETSHIP_REGION: config.region },
  // Coalesced: a download reports per chunk, the relay needs a few updates a second at most.
  onStatus: () => {
    statusTimer ??= setTimeout(() => {
      statusTimer = undefined;
      link?.sendStatus();
    }, 250);
  },
});
await agent.start();
// Releases kept from before this start are offered to peers too (seeders from the first minute).
if (mesh?.enabled) {
  for (const r of await agent.keptReleases()) {
    mesh.builds.addRelease(
      r.manifest.build_id,
      r.manifest.chunks.map((c) => c.size),
      r.file,
    );
  }
}
link = new RelayLink({
  relays: config.relays,
  token,
  machineId: config.machineId,
  region: config.region,
  peerUrl,
  labels: config.labels,
  ...(mesh
    ? {
        onUnknown: (type: string, value: Readonly<Record<string, unknown>>) =>
          mesh.onRelayFrame(type, value),
      }
    : {}),
  apps: () => agent.statuses(),
  onGoals: (message) =>
    void agent.onGoals(message).catch((err) => {
      logger.log("error", "goal:refused", { app: null, reason: "error", message: String(err) });
    }),
  logger,
});

logger.log("info", "agent:started", {
  machine_id: config.machineId,
  region: config.region,
  relays: config.relays,
  state_dir: config.stateDir,
});
await link.run(stop.signal);
clearTimeout(statusTimer);
if (mesh) {
  logger.log("info", "mesh:finished", {
    peer_pieces: mesh.counts.peer,
    relay_pieces: mesh.counts.relay,
    banned: mesh.counts.banned,
    relay_busy: mesh.counts.relayBusy,
  });
  mesh.stop();
}
await agent.stop();
kv.close();
logger.log("info", "agent:stopped", {});
Deno.exit(0);
