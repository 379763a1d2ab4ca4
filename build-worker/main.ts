/**
 * The build worker (DESIGN sections 2, 4, 5): claims builds from the control plane, checks each
 * commit out, runs its build command, chunks and uploads the artifact, completes. The one
 * composition root: reads the configuration, builds the parts, runs until SIGTERM/SIGINT.
 *
 *   FLEETSHIP_BUILDER_TOKEN=… deno task build-worker --url http://127.0.0.1:8787
 *
 * On SIGTERM/SIGINT it stops claiming (a claim under way is waited for, at most
 * --claim-wait-s, and what it brings is handed back), lets running builds finish for --grace-s
 * (a second signal cuts that short), then kills them and reports them as `infrastructure`
 * failures (the control plane requeues those), and exits 0.
 */

import { usageError } from "../protocol/flags.ts";
import { controlPlaneClient } from "./api.ts";
import { type AttemptDeps, runAttempt } from "./build-attempt.ts";
import { ConfigError, parseConfig, USAGE } from "./config.ts";
import { gitCommand } from "./git-checkout.ts";
import { KeyedLock } from "./keyed-lock.ts";
import { jsonLogger } from "./log.ts";
import { WorkerPool } from "./worker-pool.ts";

/** When a build is stopped (timeout, shutdown), how long SIGTERM has before SIGKILL. */
const KILL_GRACE_MS = 3_000;

/** What of the worker's environment a build command sees (its token never). */
const BUILD_ENV_NAMES = [
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

let config: ReturnType<typeof parseConfig>;
try {
  config = parseConfig(Deno.args, Deno.env.toObject(), {
    hostname: Deno.hostname(),
    pid: Deno.pid,
    tmpdir: Deno.env.get("TMPDIR") || "/tmp",
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  logger.log("error", "config:invalid", { problems: err.problems });
  console.error(usageError("fleetship-build-worker", err.problems, USAGE));
  Deno.exit(2);
}
if (config === "help") {
  console.log(USAGE);
  Deno.exit(0);
}

const env = Deno.env.toObject();
const buildEnv = Object.fromEntries(
  BUILD_ENV_NAMES.flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]]])),
);
buildEnv.PATH ??= "/usr/local/bin:/usr/bin:/bin";
// git sees the worker's environment (SSH agent, proxies) but not the worker's own settings.
const gitEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("FLEETSHIP_")));

// A workspace belongs to one worker process: checkouts left by a killed predecessor go.
await Deno.remove(`${config.workspace}/builds`, { recursive: true }).catch(() => {});
await Deno.mkdir(`${config.workspace}/builds`, { recursive: true });

const api = controlPlaneClient({ url: config.url, token: config.token, logger });
const deps: AttemptDeps = {
  api,
  logger,
  git: gitCommand(gitEnv),
  gitLock: new KeyedLock(),
  workspace: config.workspace,
  workerId: config.workerId,
  chunker: config.chunker,
  uploadConcurrency: config.uploadConcurrency,
  buildEnv,
  killGraceMs: KILL_GRACE_MS,
};
const stopClaiming = new AbortController();
const abortBuilds = new AbortController();
const pool = new WorkerPool({
  api,
  logger,
  workerId: config.workerId,
  slots: config.slots,
  claimWaitS: config.claimWaitS,
  runAttempt: (claim, opts) => runAttempt(claim, deps, opts),
  stopClaiming: stopClaiming.signal,
  abortBuilds: abortBuilds.signal,
});

const graceMs = config.graceMs;
let graceTimer: ReturnType<typeof setTimeout> | undefined;
const onSignal = (signal: Deno.Signal) => () => {
  if (stopClaiming.signal.aborted) {
    // A second signal: no more grace.
    abortBuilds.abort();
    return;
  }
  logger.log("info", "worker:stopping", { signal, grace_ms: graceMs, running: pool.running });
  stopClaiming.abort();
  graceTimer = setTimeout(() => {
    if (pool.running > 0) logger.log("warn", "worker:grace-expired", { running: pool.running });
    abortBuilds.abort();
  }, graceMs);
};
for (const signal of ["SIGTERM", "SIGINT"] as const)
  Deno.addSignalListener(signal, onSignal(signal));

logger.log("info", "worker:started", {
  worker_id: config.workerId,
  url: config.url,
  slots: config.slots,
  workspace: config.workspace,
});
await pool.run();
clearTimeout(graceTimer);
logger.log("info", "worker:stopped", {});
Deno.exit(0);
