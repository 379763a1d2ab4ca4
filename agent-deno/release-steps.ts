/**
 * The two heavy steps of a deploy, for AppConverger: getting a release onto disk (verified
 * manifest, assembled file, installed directory) and starting one (process plus health check).
 */
import type { HealthCheck } from "../protocol/goal.ts";
import type { AppProgress } from "../protocol/relay-messages.ts";
import type { AgentState } from "./agent-state.ts";
import { downloadBuild } from "./download.ts";
import { fetchVerifiedManifest, type ManifestDeps } from "./fetch-manifest.ts";
import { checkHealth, type HealthResult } from "./health.ts";
import type { LocalChunks } from "./local-chunks.ts";
import type { PieceSource } from "./piece-source.ts";
import { ownershipProblem } from "./port-owner.ts";
import type { Releases } from "./releases.ts";
import type { Supervisor } from "./supervisor.ts";

export interface ReleaseDeps extends ManifestDeps {
  app: string;
  state: AgentState;
  releases: Releases;
  supervisor: Supervisor;
  source: PieceSource;
  /** Chunks held in every app's kept releases. */
  localChunks: () => Promise<LocalChunks>;
  partialDir: string;
  healthTimeoutMs: number;
  downloadConcurrency: number;
  /** The port the app listens on ($PORT). */
  port: (health: HealthCheck | null) => Promise<number>;
  /** The environment of the app's process and health command, beyond PORT and FLEETSHIP_*. */
  baseEnv: Record<string, string>;
}

/** Fetches, verifies, assembles and installs `target` as a release directory. */
export async function fetchRelease(
  d: ReleaseDeps,
  target: { build_id: number; manifest_digest: string },
  o: { onProgress: (progress: AppProgress) => void; signal: AbortSignal },
): Promise<void> {
  const { manifest, text } = await fetchVerifiedManifest(d, { app: d.app, ...target }, o.signal);
  const partial = `${d.partialDir}/${d.app}-${target.build_id}.part`;
  await Deno.mkdir(d.partialDir, { recursive: true });
  await downloadBuild({
    app: d.app,
    manifest,
    manifestDigest: target.manifest_digest,
    partialPath: partial,
    progress: {
      get: () => d.state.progress(d.app, target.build_id),
      set: (p) => d.state.setProgress(d.app, target.build_id, p),
    },
    local: await d.localChunks(),
    source: d.source,
    concurrency: d.downloadConcurrency,
    logger: d.logger,
    onProgress: o.onProgress,
    signal: o.signal,
    releasePath: `${d.releases.dir(target.build_id)}/${d.app}`,
  });
  await d.releases.install(target.build_id, {
    partial,
    manifestText: text,
    manifestDigest: target.manifest_digest,
  });
  await d.state.clearProgress(d.app, target.build_id);
  d.logger.log("info", "release:installed", {
    app: d.app,
    build_id: target.build_id,
    path: d.releases.dir(target.build_id),
  });
}

type Run = { generation: number; run_command: string; health_check: HealthCheck | null };

/** The port, directory and environment release `buildId` runs with. */
async function runSpec(d: ReleaseDeps, run: Run, buildId: number) {
  const port = await d.port(run.health_check);
  const dir = d.releases.dir(buildId);
  const env = {
    ...d.baseEnv,
    PORT: String(port),
    FLEETSHIP_APP: d.app,
    FLEETSHIP_BUILD_ID: String(buildId),
    FLEETSHIP_GENERATION: String(run.generation),
    FLEETSHIP_RELEASE_DIR: dir,
    FLEETSHIP_ARTIFACT: d.releases.artifact(buildId),
  };
  return { port, dir, env };
}

/** Starts release `buildId` with `run`'s command and environment, and checks its health. */
export async function launchRelease(
  d: ReleaseDeps,
  run: Run,
  buildId: number,
  signal: AbortSignal,
): Promise<HealthResult> {
  const spec = await runSpec(d, run, buildId);
  const refused = await d.supervisor.start({ buildId, command: run.run_command, ...spec });
  const health: HealthResult = refused
    ? { ok: false, reason: `not started: ${refused}` }
    : await checkRunning(d, run, spec, { deadlineMs: d.healthTimeoutMs, signal });
  if (health.ok) {
    d.logger.log("info", "health:passed", { app: d.app, build_id: buildId, ms: health.ms });
  } else {
    d.logger.log("warn", "health:failed", { app: d.app, build_id: buildId, reason: health.reason });
  }
  return health;
}

/** How long one probe of a running release may take (after a crash, see app-watch.ts). */
const PROBE_DEADLINE_MS = 2_000;

/** One health probe of the release that runs now: its check, and the port its group's. */
export async function probeRelease(
  d: ReleaseDeps,
  run: Run,
  buildId: number,
  signal: AbortSignal,
): Promise<HealthResult> {
  const spec = await runSpec(d, run, buildId);
  return checkRunning(d, run, spec, { deadlineMs: PROBE_DEADLINE_MS, settleMs: 0, signal });
}

/** The release's health check against the process the supervisor runs now. */
function checkRunning(
  d: ReleaseDeps,
  run: Run,
  spec: { port: number; dir: string; env: Record<string, string> },
  o: { deadlineMs: number; settleMs?: number; signal: AbortSignal },
): Promise<HealthResult> {
  return checkHealth({
    check: run.health_check,
    ...spec,
    ...o,
    exited: d.supervisor.exited(),
    ownership: portOwnership(d, spec.port),
  });
}

/**
 * For health checks of the running process: null when the socket on `port` is its group's,
 * else why not. Where /proc cannot tell (not Linux), the answer counts, with a warning.
 */
export function portOwnership(
  d: Pick<ReleaseDeps, "app" | "supervisor" | "logger">,
  port: number,
): () => Promise<string | null> {
  let warned = false;
  return async () => {
    const problem = await ownershipProblem(port, await d.supervisor.group());
    if (problem !== undefined) return problem;
    if (!warned) d.logger.log("warn", "health:ownership-unproven", { app: d.app, port });
    warned = true;
    return null;
  };
}
