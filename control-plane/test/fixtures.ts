import { DEFAULT_CHUNKER_PARAMS } from "../../protocol/chunker-params.ts";
import { buildManifest, type Manifest } from "../../protocol/manifest.ts";
import { call } from "./helpers.ts";

let shaCounter = 0;
/** A distinct, well-formed commit SHA per call. */
export function sha(n = ++shaCounter): string {
  return n.toString(16).padStart(40, "0");
}

export const sampleApp = (name: string) => ({
  name,
  repo_url: `file:///srv/git/${name}.git`,
  build_command: "make",
  artifact_path: "out/app",
  run_command: "./app --port $PORT",
  health_check: { type: "http", path: "/healthz", port: 8080 },
});

export async function registerApp(
  admin: string,
  name: string,
  fields: Record<string, unknown> = {},
): Promise<void> {
  const r = await call("POST", "/v1/applications", {
    token: admin,
    body: { ...sampleApp(name), ...fields },
  });
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}

export async function queueBuild(deployer: string, app: string, commit = sha()): Promise<number> {
  const r = await call("POST", "/v1/builds", {
    token: deployer,
    body: { app, commit_sha: commit },
  });
  if (r.status !== 201) throw new Error(`queue build: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as number;
}

export interface Claimed {
  id: number;
  lease: string;
  attempt: number;
  app: string;
  commit: string;
}

export async function claimOne(builder: string, workerId = "w1"): Promise<Claimed | undefined> {
  const r = await call("POST", "/v1/worker/claim", {
    token: builder,
    body: { worker_id: workerId },
  });
  if (r.status === 204) return undefined;
  if (r.status !== 200) throw new Error(`claim: ${r.status} ${JSON.stringify(r.body)}`);
  const b = r.body.build;
  return {
    id: b.id,
    lease: r.body.lease_token,
    attempt: b.attempt,
    app: b.app,
    commit: b.commit_sha,
  };
}

/** A valid manifest for a claimed build; with no chunks unless given (an empty artifact). */
export function manifestFor(
  build: { id: number; app: string; commit: string },
  chunks: { digest: string; size: number }[] = [],
  sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
): Manifest {
  return buildManifest(
    { app: build.app, build_id: build.id, commit_sha: build.commit },
    { chunks, sha256, params: TEST_CHUNKER },
  );
}

/** Small chunks, so tests move kilobytes, not megabytes. */
export const TEST_CHUNKER = {
  ...DEFAULT_CHUNKER_PARAMS,
  min_size: 1024,
  avg_size: 4096,
  max_size: 131072,
};
