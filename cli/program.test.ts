import assert from "node:assert/strict";
import { apiError, harness, json, T0 } from "./test-harness.ts";

const notCalled = () => {
  throw new Error("the API must not be called");
};

Deno.test("run() exits 2 on bad arguments without calling the API", async () => {
  for (const argv of [
    ["bogus"],
    ["logs", "abc"],
    ["logs", "0"],
    ["deploy", "hello", "1.5"],
    ["build", "hello"],
    ["apps", "--nope"],
    ["apps", "add", "x", "--repo", "r", "--build", "b", "--artifact", "a"],
    [
      "apps",
      "add",
      "x",
      "--repo",
      "r",
      "--build",
      "b",
      "--artifact",
      "a",
      "--run",
      "r",
      "--health-http",
      "x",
    ],
    [
      "apps",
      "add",
      "x",
      "--repo",
      "r",
      "--build",
      "b",
      "--artifact",
      "a",
      "--run",
      "r",
      "--health-http",
      "80:/",
      "--health-cmd",
      "true",
    ],
  ]) {
    const h = harness(notCalled);
    assert.equal(await h.run(...argv), 2, argv.join(" "));
    assert.match(h.stderr(), /^error usage: /m, argv.join(" "));
  }
});

Deno.test("run() exits 0 for --help and prints usage with the exit codes", async () => {
  const h = harness(notCalled);
  assert.equal(await h.run("--help"), 0);
  assert.match(h.stdout(), /Exit codes: 0 ok; 1 .*; 2 usage; 3 /s);
});

Deno.test("run() prints an API refusal as `error <code>: <message>` and exits 3", async () => {
  const h = harness(() => apiError(400, "invalid_input", "commit_sha: must be a full SHA"));
  assert.equal(await h.run("build", "hello", "nope"), 3);
  assert.equal(h.stderr(), "error invalid_input: commit_sha: must be a full SHA\n");
  assert.equal(h.stdout(), "");
});

Deno.test("run() exits 3 with the status when a refusal is not the API's JSON", async () => {
  const h = harness(() => new Response("<html>bad gateway</html>", { status: 502 }));
  assert.equal(await h.run("apps"), 3);
  assert.match(h.stderr(), /^error http_502: 502 <html>bad gateway/);
});

Deno.test("run() exits 4 when the control plane cannot be reached", async () => {
  const h = harness(() => Promise.reject(new TypeError("connection refused")));
  assert.equal(await h.run("apps"), 4);
  assert.match(
    h.stderr(),
    /^error unreachable: cannot reach the control plane at http:\/\/cp\.test \(connection refused\)/,
  );
});

Deno.test("run() exits 2 when no connection is configured", async () => {
  const h = harness(notCalled, { env: {} });
  assert.equal(await h.run("status"), 2);
  assert.match(h.stderr(), /local\.json does not exist/);
});

Deno.test("apps add sends the application with the admin token from local.json", async () => {
  const local = JSON.stringify({
    control_plane_url: "http://cp.test",
    tokens: { admin: "adm", deployer: "dep", builder: "bld" },
  });
  const h = harness(
    (_req, body) => json({ ...(body as object), health_check: null, regions: ["a", "b"] }, 201),
    { env: {}, files: { "/repo/.data/local.json": local } },
  );
  const code = await h.run(
    "apps",
    "add",
    "hello",
    "--repo",
    "file:///r.git",
    "--build",
    "make",
    "--artifact",
    "out/h",
    "--run",
    "./h",
    "--health-http",
    "8080:/healthz",
    "--regions",
    "a, b",
    "--build-timeout",
    "60",
  );
  assert.equal(code, 0, h.stderr());
  assert.deepEqual(h.requests, [
    {
      method: "POST",
      path: "/v1/applications",
      auth: "Bearer adm",
      body: {
        name: "hello",
        repo_url: "file:///r.git",
        build_command: "make",
        artifact_path: "out/h",
        run_command: "./h",
        health_check: { type: "http", port: 8080, path: "/healthz" },
        regions: ["a", "b"],
        build_timeout_s: 60,
      },
    },
  ]);
  assert.match(h.stdout(), /Registered hello/);
});

Deno.test("apps lists a table, and --json prints the API's JSON unchanged", async () => {
  const body = {
    applications: [
      {
        name: "hello",
        repo_url: "file:///r.git",
        health_check: { type: "command", command: "true" },
        regions: ["us-east"],
        created_at: new Date(T0 - 180_000).toISOString(),
      },
    ],
  };
  const h = harness(() => json(body));
  assert.equal(await h.run("apps"), 0);
  assert.match(
    h.stdout(),
    /^NAME\s+REGIONS\s+HEALTH\s+REPO\s+CREATED\nhello\s+us-east\s+cmd true\s+file:\/\/\/r\.git\s+3 min ago\n$/,
  );
  const j = harness(() => json(body));
  assert.equal(await j.run("apps", "--json"), 0);
  assert.deepEqual(JSON.parse(j.stdout()), body);
});

Deno.test("build says whether it queued a new build or found the commit's build", async () => {
  const build = { id: 7, app: "hello", commit_sha: "a".repeat(40), status: "QUEUED" };
  const created = harness(() => json(build, 201));
  assert.equal(await created.run("build", "hello", "a".repeat(40), "--force"), 0);
  assert.match(created.stdout(), /Build 7 of hello at aaaaaaaaaa queued: QUEUED/);
  assert.deepEqual(created.requests[0]?.body, {
    app: "hello",
    commit_sha: "a".repeat(40),
    force: true,
  });
  assert.equal(created.requests[0]?.auth, "Bearer tok");
  const existing = harness(() => json(build, 200));
  assert.equal(await existing.run("build", "hello", "a".repeat(40)), 0);
  assert.match(existing.stdout(), /already exists/);
});
