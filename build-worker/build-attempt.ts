/**
 * One build attempt, from claim to the final report: check the commit out, run the build
 * command, chunk and upload the artifact, complete. Heartbeats and log shipping run beside it.
 * Three things stop it from outside (outcome.ts): a refused lease (kill at once, report
 * nothing), its timeout (kill, fail `timeout`) and the worker's shutdown (kill, fail
 * `infrastructure` so the build is requeued).
 */
import type { ChunkerParams, Manifest } from "../protocol/index.ts";
import { ApiError, type Claimed, type ControlPlane, isLeaseRefusal } from "./api.ts";
import { chunkArtifact, uploadMissing } from "./artifact-upload.ts";
import { checkoutCommit, fetchCommit, type Git } from "./git-checkout.ts";
import { startHeartbeat } from "./heartbeat.ts";
import type { KeyedLock } from "./keyed-lock.ts";
import { errorText, type Logger } from "./log.ts";
import { LogShipper } from "./log-shipper.ts";
import { AttemptStopped, BuildFailure, type Outcome, outcomeOf } from "./outcome.ts";
import { runInProcessGroup } from "./process-group.ts";

export interface AttemptDeps {
  api: ControlPlane;
  logger: Logger;
  git: Git;
  gitLock: KeyedLock;
  workspace: string;
  workerId: string;
  chunker: ChunkerParams;
  uploadConcurrency: number;
  /** The build command's environment before the FLEETSHIP_* variables are added. */
  buildEnv: Record<string, string>;
  /** SIGTERM to SIGKILL when a build is stopped for its timeout or a shutdown. */
  killGraceMs: number;
}

/** Rounds of upload + complete when the control plane still misses chunks (422). */
const COMPLETE_ROUNDS = 3;

/** Runs `claim` to its end; never throws. `shutdown` aborts once the worker must let go. */
export async function runAttempt(
  claim: Claimed,
  deps: AttemptDeps,
  opts: { slot: number; shutdown: AbortSignal },
): Promise<Outcome> {
  const { build, lease_token: leaseToken } = claim;
  const { api, logger } = deps;
  const started = performance.now();
  logger.log("info", "build:claimed", {
    build_id: build.id,
    attempt: build.attempt,
    app: claim.app.name,
    commit_sha: build.commit_sha,
    slot: opts.slot,
    timeout_ms: build.timeout_ms,
  });

  const stopper = new AbortController();
  const stop = (reason: AttemptStopped) => stopper.abort(reason);
  const timer = setTimeout(
    () => stop(new AttemptStopped({ kind: "timeout", timeoutMs: build.timeout_ms })),
    build.timeout_ms,
  );
  const onShutdown = () => stop(new AttemptStopped({ kind: "shutdown" }));
  if (opts.shutdown.aborted) onShutdown();
  else opts.shutdown.addEventListener("abort", onShutdown, { once: true });

  const shipper = new LogShipper({
    send: (seq, lines) => api.appendLogs(build.id, { leaseToken, seq, lines }),
    onError: (err, seq, lines) => {
      if (isLeaseRefusal(err)) {
        stop(new AttemptStopped({ kind: "lease", code: err.code, message: err.message }));
        return "stop";
      }
      logger.log("warn", "logs:dropped", {
        build_id: build.id,
        seq,
        lines: lines.length,
        error: errorText(err),
      });
      return "drop";
    },
  });
  const heartbeat = startHeartbeat({
    intervalMs: claim.heartbeat_interval_ms,
    beat: (signal) => api.heartbeat(build.id, leaseToken, signal),
    onLost: (refusal) => stop(new AttemptStopped({ kind: "lease", ...refusal })),
    onError: (err) =>
      logger.log("warn", "heartbeat:failed", { build_id: build.id, error: errorText(err) }),
  });

  const dir = `${deps.workspace}/builds/${build.id}-${build.attempt}-${crypto.randomUUID().slice(0, 8)}`;
  let outcome: Outcome;
  let size = 0;
  try {
    size = await steps(claim, dir, { ...deps, shipper, signal: stopper.signal });
    outcome = { kind: "succeeded" };
  } catch (err) {
    outcome = outcomeOf(err, stopper.signal);
  } finally {
    clearTimeout(timer);
    opts.shutdown.removeEventListener("abort", onShutdown);
  }

  if (outcome.kind === "failed") outcome = await reportFailure(claim, outcome, deps, shipper);
  shipper.stop();
  await heartbeat.stop();
  const fields = { build_id: build.id, attempt: build.attempt };
  if (outcome.kind === "succeeded") {
    logger.log("info", "build:completed", {
      ...fields,
      size,
      ms: Math.round(performance.now() - started),
    });
  } else if (outcome.kind === "failed") {
    logger.log("warn", "build:failed", {
      ...fields,
      reason: outcome.reason,
      message: outcome.message,
    });
  } else {
    logger.log("warn", "build:abandoned", {
      ...fields,
      code: outcome.code,
      message: outcome.message,
    });
  }
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) {
      logger.log("warn", "workspace:cleanup-failed", { path: dir, error: errorText(err) });
    }
  });
  return outcome;
}

type StepDeps = AttemptDeps & { shipper: LogShipper; signal: AbortSignal };

/** Runs the attempt's steps; returns the artifact's size once the build SUCCEEDED. */
async function steps(claim: Claimed, dir: string, deps: StepDeps): Promise<number> {
  const { build, app } = claim;
  const { shipper, signal, logger } = deps;
  const note = (line: string) => shipper.write(`[fleetship] ${line}`);
  await note(
    `build ${build.id} attempt ${build.attempt}: ${app.name} at ${build.commit_sha} on ${deps.workerId}`,
  );

  let t = performance.now();
  await Deno.mkdir(`${deps.workspace}/builds`, { recursive: true });
  const gitDeps = { workspace: deps.workspace, git: deps.git, lock: deps.gitLock, signal };
  const mirror = await fetchCommit(app.repo_url, build.commit_sha, { ...gitDeps, note });
  await checkoutCommit(mirror, build.commit_sha, dir, gitDeps);
  logger.log("info", "build:checked-out", {
    build_id: build.id,
    commit_sha: build.commit_sha,
    dir,
    ms: ms(t),
  });

  await note(`running: ${app.build_command}`);
  t = performance.now();
  const run = await runInProcessGroup(app.build_command, {
    cwd: dir,
    env: {
      ...deps.buildEnv,
      FLEETSHIP_BUILD_ID: String(build.id),
      FLEETSHIP_COMMIT_SHA: build.commit_sha,
      FLEETSHIP_APP: app.name,
    },
    onLine: (line) => shipper.write(line),
    onStart: (pid) => logger.log("info", "build:command-started", { build_id: build.id, pid }),
    signal,
    killGraceMs: (reason) =>
      reason instanceof AttemptStopped && reason.stop.kind === "lease" ? 0 : deps.killGraceMs,
  });
  logger.log("info", "build:command-exited", {
    build_id: build.id,
    code: run.code,
    signal: run.signal,
    ms: ms(t),
  });
  signal.throwIfAborted();
  if (run.code !== 0) {
    const how = run.signal ? `was killed by ${run.signal}` : `exited with code ${run.code}`;
    throw new BuildFailure("build_error", `the build command ${how}`);
  }

  const artifact = await artifactFile(dir, app.artifact_path);
  t = performance.now();
  const manifest = await chunkArtifact(
    artifact,
    { app: app.name, build_id: build.id, commit_sha: build.commit_sha },
    deps.chunker,
  );
  logger.log("info", "build:chunked", {
    build_id: build.id,
    size: manifest.size,
    chunks: manifest.chunks.length,
    sha256: manifest.sha256,
    ms: ms(t),
  });
  await note(
    `artifact ${app.artifact_path}: ${manifest.size} bytes in ${manifest.chunks.length} chunks`,
  );
  await uploadAndComplete(claim, artifact, manifest, deps);
  return manifest.size;
}

async function uploadAndComplete(
  claim: Claimed,
  artifact: string,
  manifest: Manifest,
  deps: StepDeps,
): Promise<void> {
  const { build, lease_token: leaseToken } = claim;
  for (let round = 1; ; round++) {
    const t = performance.now();
    const summary = await uploadMissing(artifact, manifest, {
      api: deps.api,
      logger: deps.logger,
      buildId: build.id,
      concurrency: deps.uploadConcurrency,
      signal: deps.signal,
    });
    deps.logger.log("info", "build:uploaded", { build_id: build.id, ...summary, ms: ms(t) });
    await deps.shipper.write(
      `[fleetship] uploaded ${summary.chunks_uploaded} of ${summary.chunks_total} chunks (${summary.bytes_uploaded} of ${summary.bytes_total} bytes)`,
    );
    // Lines sent after completion would be refused: the build is no longer RUNNING.
    await deps.shipper.flush();
    try {
      await deps.api.complete(build.id, leaseToken, manifest, deps.signal);
      return;
    } catch (err) {
      if (err instanceof ApiError && err.code === "chunks_missing" && round < COMPLETE_ROUNDS) {
        continue;
      }
      if (isLeaseRefusal(err) && (await completedByUs(claim, deps))) return;
      throw err;
    }
  }
}

/** After a 409 on complete: did an earlier try of this very call (answer lost) succeed? */
async function completedByUs(claim: Claimed, deps: StepDeps): Promise<boolean> {
  const now = await deps.api.getBuild(claim.build.id, deps.signal).catch(() => undefined);
  return (
    now?.status === "SUCCEEDED" &&
    now.attempt === claim.build.attempt &&
    now.worker_id === deps.workerId
  );
}

/** The artifact's real path; it must be a regular file inside the checkout. */
async function artifactFile(dir: string, relative: string): Promise<string> {
  let path: string;
  try {
    path = await Deno.realPath(`${dir}/${relative}`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new BuildFailure("invalid_artifact", `artifact ${relative} not found after the build`);
    }
    throw err;
  }
  const root = await Deno.realPath(dir);
  if (!path.startsWith(`${root}/`)) {
    throw new BuildFailure("invalid_artifact", `artifact ${relative} points outside the checkout`);
  }
  if (!(await Deno.stat(path)).isFile) {
    throw new BuildFailure("invalid_artifact", `artifact ${relative} is not a regular file`);
  }
  return path;
}

/** Flushes the logs, then reports the failure; a refusal turns it into an abandonment. */
async function reportFailure(
  claim: Claimed,
  outcome: Extract<Outcome, { kind: "failed" }>,
  deps: AttemptDeps,
  shipper: LogShipper,
): Promise<Outcome> {
  const { build } = claim;
  await shipper.write(`[fleetship] ${outcome.reason}: ${outcome.message}`);
  await shipper.flush();
  try {
    await deps.api.fail(build.id, {
      leaseToken: claim.lease_token,
      reason: outcome.reason,
      message: outcome.message,
    });
    return outcome;
  } catch (err) {
    if (isLeaseRefusal(err)) return { kind: "abandoned", code: err.code, message: err.message };
    deps.logger.log("error", "build:report-failed", { build_id: build.id, error: errorText(err) });
    return outcome;
  }
}

const ms = (since: number) => Math.round(performance.now() - since);
