import { log } from "./log.ts";
import { createSampleRepo } from "./sample-app/create-repo.ts";

// biome-ignore lint/suspicious/noExplicitAny: the launcher reads API answers loosely; the API validates them
type Json = any;

/** The local stack's API client: JSON in and out, errors raised with the API's message. */
export function apiClient(url: string) {
  return async function call<T = Json>(
    method: string,
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  };
}

export const SAMPLE_APP = "sample-app";

/**
 * Makes sure the sample application exists: its git repository under `data` (created once,
 * with the same commits on every machine) and its registration with the control plane.
 */
export async function ensureSampleApp(
  url: string,
  admin: string,
  data: string,
): Promise<{ repoUrl: string; commits: string[] }> {
  const call = apiClient(url);
  const dir = `${data}/sample-app.git`;
  let repo: { repoUrl: string; commits: string[] };
  try {
    repo = JSON.parse(await Deno.readTextFile(`${data}/sample-app.json`));
  } catch {
    repo = await createSampleRepo(dir);
    await Deno.writeTextFile(`${data}/sample-app.json`, JSON.stringify(repo));
  }
  const existing = await call("GET", `/v1/applications/${SAMPLE_APP}`, admin);
  if (existing.status === 404) {
    const r = await call("POST", "/v1/applications", admin, {
      name: SAMPLE_APP,
      repo_url: repo.repoUrl,
      build_command: "sh build.sh",
      artifact_path: "out/sample-app",
      run_command: "./sample-app --port $PORT",
      health_check: { type: "http", path: "/healthz", port: 8080 },
    });
    if (r.status !== 201) throw new Error(`registering ${SAMPLE_APP}: ${JSON.stringify(r.body)}`);
  }
  return repo;
}

/** Builds a commit of the sample app and waits until it is deployable, logging each phase. */
export async function buildAndReplicate(
  url: string,
  deployer: string,
  commit: string,
  timeoutMs = 300_000,
): Promise<number> {
  const call = apiClient(url);
  const q = await call<{ id: number }>("POST", "/v1/builds", deployer, {
    app: SAMPLE_APP,
    commit_sha: commit,
  });
  if (q.status !== 201 && q.status !== 200)
    throw new Error(`queueing the sample build: ${JSON.stringify(q.body)}`);
  const id = q.body.id;
  log("info", "stack:phase", { phase: "build", build_id: id, commit });
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const b = (await call<Json>("GET", `/v1/builds/${id}`, deployer)).body;
    const replication = (b.replication ?? [])
      .map((r: Json) => `${r.region} ${r.percent}%`)
      .join(", ");
    const now = `${b.status} attempt ${b.attempt}${replication ? `; replication: ${replication}` : ""}`;
    if (now !== last) {
      log("info", "stack:progress", {
        phase: "build",
        build_id: id,
        status: b.status,
        attempt: b.attempt,
        replication: b.replication,
      });
      last = now;
    }
    if (b.status === "FAILED")
      throw new Error(`the sample build ${id} FAILED (${b.failure_reason}): ${b.failure_message}`);
    if (b.deployable) return id;
    if (Date.now() > deadline)
      throw new Error(
        `the sample build ${id} was not deployable within ${timeoutMs / 1000} s: ${now}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}
