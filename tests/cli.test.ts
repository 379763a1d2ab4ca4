// The CLI (cli/main.ts) as a real Deno process against the real local stack (libSQL server +
// control plane under wrangler dev): its output and exit codes. A builder's work is done
// through the API by the test itself (claim, log, fail, complete), a region relay is played
// over the real subscription WebSocket, and the last block runs the real build worker.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSampleRepo, killLeftoverWorkers, startWorker } from "./support/build-worker.ts";
import { DENO, freePort, ROOT, type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let scratch: string;
const children = new Set<ChildProcess>();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  output(): string;
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<Run>;
}

/** Starts `deno task cli` (same permissions) with `args`; the deployer's token unless `env` says. */
function startCli(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(
    DENO,
    ["run", "--allow-net", "--allow-read", "--allow-env", "cli/main.ts", ...args],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/tmp",
        NO_COLOR: "1",
        FLEETSHIP_URL: stack.url,
        FLEETSHIP_TOKEN: stack.tokens.deployer,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<Run>((resolve) =>
    child.once("close", (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    output: () => stdout,
    done,
    async waitForOutput(re, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(stdout)) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`no ${re} in the CLI's output:\n${stdout}\n${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

const cli = (args: string[], env?: Record<string, string>) => startCli(args, env).done;

async function api(method: string, path: string, token: string, body?: unknown): Promise<any> {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Claims the oldest queued build as a builder; the test then acts as its worker. */
async function claim(): Promise<{ id: number; lease: string }> {
  const r = await api("POST", "/v1/worker/claim", stack.tokens.builder, { worker_id: "cli-test" });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return { id: r.body.build.id, lease: r.body.lease_token };
}

/** Completes a claimed build with an empty artifact: in every region at once, so deployable. */
async function completeEmpty(app: string, commit: string, c: { id: number; lease: string }) {
  const manifest = {
    version: 1,
    app,
    build_id: c.id,
    commit_sha: commit,
    created_at: new Date().toISOString(),
    size: 0,
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    chunker: {
      algorithm: "fastcdc-2020",
      min_size: 1048576,
      avg_size: 4194304,
      max_size: 16777216,
      normalization: 2,
    },
    chunks: [],
  };
  const r = await api("POST", `/v1/worker/builds/${c.id}/complete`, stack.tokens.builder, {
    lease_token: c.lease,
    manifest,
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

/** Cancels what earlier tests left queued, so the next claim takes the build a test expects. */
async function cancelQueued(): Promise<void> {
  const queued = await api("GET", "/v1/builds?status=QUEUED", stack.tokens.deployer);
  for (const b of queued.body.builds) {
    expect((await api("POST", `/v1/builds/${b.id}/cancel`, stack.tokens.deployer)).status).toBe(
      200,
    );
  }
}

const sha = (c: string) => c.repeat(40);
const appArgs = ["--repo", "file:///srv/none.git", "--build", "make", "--artifact", "out/app"];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "fleetship-cli-"));
  stack = await startStack();
}, 150_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  killLeftoverWorkers();
  await stack?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("fleetship CLI against the local stack", () => {
  it("apps add registers with the admin token of local.json; apps --json lists it", async () => {
    // No --url/--token and no FLEETSHIP_URL/TOKEN: the stack's local.json, as after `npm start`.
    const local = { FLEETSHIP_URL: "", FLEETSHIP_TOKEN: "", FLEETSHIP_DATA: stack.dataDir };
    const add = await cli(
      ["apps", "add", "demo", ...appArgs, "--run", "./app", "--health-http", "8080:/healthz"],
      local,
    );
    expect(add.stderr).toBe("");
    expect(add.code).toBe(0);
    expect(add.stdout).toContain("Registered demo");
    const list = await cli(["apps", "--json"], local);
    expect(list.code).toBe(0);
    const demo = JSON.parse(list.stdout).applications.find((a: any) => a.name === "demo");
    expect(demo.health_check).toEqual({ type: "http", port: 8080, path: "/healthz" });
    const table = await cli(["apps"], local);
    expect(table.stdout).toMatch(/^NAME\s+REGIONS\s+HEALTH\s+REPO\s+CREATED$/m);
    expect(table.stdout).toMatch(/^demo\s+us-east,eu-west,ap-south\s+http :8080\/healthz\s+/m);
    // The deployer token may not register applications: the API's refusal, exit 3.
    const refused = await cli(["apps", "add", "nope", ...appArgs, "--run", "./x"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^error forbidden: /);
  });

  it("build --json twice answers the same build; a bad SHA is the API's invalid_input", async () => {
    const first = await cli(["build", "demo", sha("a"), "--json", "--url", stack.url]);
    const second = await cli(["build", "demo", sha("a"), "--json"]);
    expect(first.code, first.stderr).toBe(0);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).id).toBe(JSON.parse(first.stdout).id);
    expect(JSON.parse(first.stdout).status).toBe("QUEUED");

    const bad = await cli(["build", "demo", "not-a-sha"]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/^error invalid_input: .*commit SHA/);
  });

  it("logs prints what a builder appended; logs -f follows until the build fails, exit 1", async () => {
    const c = await claim();
    const append = async (seq: number, lines: string[]) =>
      expect(
        (
          await api("POST", `/v1/worker/builds/${c.id}/logs`, stack.tokens.builder, {
            lease_token: c.lease,
            seq,
            lines,
          })
        ).status,
      ).toBe(200);
    await append(0, ["compiling main.c", "linking"]);

    const logs = await cli(["logs", String(c.id)]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(
      /^#1 \d\d:\d\d:\d\d {2}compiling main\.c\n#1 \d\d:\d\d:\d\d {2}linking\n$/,
    );

    const follow = startCli(["logs", String(c.id), "-f"]);
    await follow.waitForOutput(/linking/);
    await append(1, ["main.c:3: error: expected ';'"]);
    await follow.waitForOutput(/expected ';'/);
    const fail = await api("POST", `/v1/worker/builds/${c.id}/fail`, stack.tokens.builder, {
      lease_token: c.lease,
      reason: "build_error",
      message: "make exited with 2",
    });
    expect(fail.status).toBe(200);
    const ended = await follow.done;
    expect(ended.code).toBe(1);
    expect(ended.stderr).toBe(`error build_error: build ${c.id} failed: make exited with 2\n`);
    expect(ended.stdout.match(/^#1 /gm)).toHaveLength(3);

    const again = await cli(["logs", String(c.id)]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain("expected ';'");
  });

  it("deploy of a build that is not deployable exits 3 with the reason", async () => {
    const queued = JSON.parse((await cli(["build", "demo", sha("b"), "--json"])).stdout);
    const r = await cli(["deploy", "demo", String(queued.id), "--watch"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `error not_deployable: build ${queued.id} is QUEUED; only SUCCEEDED builds deploy\n`,
    );
  });

  it("status and machines show what the API has", async () => {
    const status = await cli(["status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^Goal \(generation \d+\)$/m);
    expect(status.stdout).toMatch(/^Latest builds\nID\s+APP\s+COMMIT\s+STATUS/m);
    expect(status.stdout).toMatch(
      /^\d+\s+demo\s+aaaaaaaaaa\s+FAILED\s+1\/3\s+-\s+.*build_error: make exited with 2$/m,
    );
    const json = JSON.parse((await cli(["status", "demo", "--json"])).stdout);
    expect(json.builds.map((b: any) => b.commit_sha)).toContain(sha("a"));
    expect(json.goal).toHaveProperty("generation");

    const machines = await cli(["machines"]);
    expect(machines.code).toBe(0);
    expect(machines.stdout).toContain("No machines reported yet.");
    const mj = await cli(["machines", "--region", "eu-west", "--json"]);
    expect(JSON.parse(mj.stdout)).toEqual({
      machines: [],
      relays: [],
      next_cursor: null,
      partial: [],
    });
  });

  it("exits 4 when the control plane cannot be reached, 2 on bad usage", async () => {
    const port = await freePort();
    const r = await cli(["status", "--url", `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /^error unreachable: cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+ /,
    );
    const usage = await cli(["logs", "twelve"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^error usage: /);
  });

  it("deploy --watch and rollback --watch follow machines a relay reports, exit 0 when done", {
    timeout: 60_000,
  }, async () => {
    expect(
      (
        await cli([
          "apps",
          "add",
          "web",
          ...appArgs,
          "--run",
          "./web",
          // The test plays eu-west's only relay: a target region nobody reports never passes.
          "--regions",
          "eu-west",
          "--token",
          stack.tokens.admin,
        ])
      ).code,
    ).toBe(0);
    await cancelQueued();
    const deployable = async (commit: string) => {
      const id = JSON.parse((await cli(["build", "web", commit, "--json"])).stdout).id as number;
      const c = await claim();
      expect(c.id).toBe(id);
      await completeEmpty("web", commit, c);
      return id;
    };
    const v1 = await deployable(sha("1"));
    const v2 = await deployable(sha("2"));
    const token = (
      await api("POST", "/v1/tokens", stack.tokens.admin, {
        name: "cli relay",
        role: "relay",
        region: "eu-west",
      })
    ).body.token;
    const ws = new WebSocket(`${stack.url.replace("http", "ws")}/v1/regions/eu-west/subscribe`, {
      headers: { Authorization: `Bearer ${token}` },
    } as unknown as string[]);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", reject);
    });
    // The machine reports the generation of the goal it acted on, as an agent does.
    const report = async (build: number | null, state: string) => {
      const goal = await api("GET", "/v1/goal", stack.tokens.deployer);
      const generation = build === null ? null : (goal.body.apps.web?.generation ?? null);
      ws.send(
        JSON.stringify({
          type: "status",
          relay_id: "relay-cli",
          machines: [{ machine_id: "m1", app: "web", build_id: build, generation, state }],
        }),
      );
    };
    try {
      ws.send(JSON.stringify({ type: "hello", relay_id: "relay-cli", url: null }));
      await report(null, "pending");
      await expect.poll(async () => (await cli(["machines", "--json"])).stdout).toContain('"m1"');
      const machines = await cli(["machines", "--app", "web"]);
      expect(machines.stdout).toMatch(/^eu-west\s+m1\s+web\s+-\s+pending\s+yes\s+relay-cli\s+/m);

      const deploy = startCli(["deploy", "web", String(v1), "--watch"]);
      await deploy.waitForOutput(/eu-west: 0\/1 healthy, 1 pending/);
      await report(v1, "healthy");
      const d = await deploy.done;
      expect(d.code, d.stderr).toBe(0);
      expect(d.stdout).toMatch(/^eu-west: 1\/1 healthy/m);
      expect(d.stdout).toMatch(/SUCCEEDED: web build \d+, healthy on 1 machines\.$/m);

      const second = JSON.parse((await cli(["deploy", "web", String(v2), "--json"])).stdout);
      await report(v2, "healthy");
      // The rollback must start from a machine known to run v2.
      await expect
        .poll(
          async () => JSON.parse((await cli(["machines", "--json"])).stdout).machines[0]?.build_id,
        )
        .toBe(v2);
      const back = startCli(["rollback", String(second.id), "--watch"]);
      await back.waitForOutput(/eu-west: 0\/1 healthy/);
      await report(v1, "healthy");
      const b = await back.done;
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toContain(`Rolling web back to build ${v1}`);
    } finally {
      ws.close();
    }
  });
});

describe("build --watch with the real build worker", () => {
  it("shows the build phase and per-region replication, exits 0 once deployable", {
    timeout: 60_000,
  }, async () => {
    await cancelQueued();
    const repo = await createSampleRepo(join(scratch, "sample-app"));
    const add = await cli([
      "apps",
      "add",
      "sample",
      "--repo",
      repo.repoUrl,
      "--build",
      "sh build.sh",
      "--artifact",
      "out/sample-app",
      "--run",
      "out/sample-app",
      "--token",
      stack.tokens.admin,
    ]);
    expect(add.code, add.stderr).toBe(0);
    const worker = startWorker(stack, { workspace: join(scratch, "ws"), workerId: "cli-worker" });
    try {
      const r = await cli(["build", "sample", repo.commits[0]!, "--watch"]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const id = /^Build (\d+) of sample/.exec(r.stdout)?.[1];
      // The worker may claim it before the first poll: QUEUED is not always seen.
      expect(r.stdout).toMatch(
        new RegExp(
          `^build ${id} \\(sample\\): (QUEUED|RUNNING attempt 1 of 3 on cli-worker)$`,
          "m",
        ),
      );
      expect(r.stdout).toMatch(/: SUCCEEDED in .* \(\d+(\.\d)? KiB\); /);
      for (const region of ["us-east", "eu-west", "ap-south"]) {
        expect(r.stdout).toMatch(new RegExp(`^${region}: COMPLETE 100% `, "m"));
      }
      expect(r.stdout).toContain(`Build ${id} is deployable in us-east, eu-west, ap-south.`);

      const logs = await cli(["logs", String(id)]);
      expect(logs.code).toBe(0);
      expect(logs.stdout).toMatch(/^#1 \d\d:\d\d:\d\d {2}\S/m);
    } finally {
      await worker.stop();
    }
  });
});
