import assert from "node:assert/strict";
import { DEFAULT_CHUNKER_PARAMS } from "../protocol/index.ts";
import { ConfigError, defaultWorkerId, parseConfig } from "./config.ts";

const host = { hostname: "build-1.example", pid: 4242, tmpdir: "/var/tmp" };
const env = { FLEETSHIP_BUILDER_TOKEN: "fst_a_b" };

function problems(args: string[], environment: Record<string, string> = env): string[] {
  try {
    parseConfig(args, environment, host);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("parseConfig() fills in a documented default for every optional field", () => {
  const config = parseConfig(["--url", "http://127.0.0.1:8787/"], env, host);
  assert.deepEqual(config, {
    url: "http://127.0.0.1:8787",
    token: "fst_a_b",
    workspace: "/var/tmp/fleetship-build-worker",
    slots: 1,
    workerId: "build-1.example-4242",
    graceMs: 60_000,
    chunker: DEFAULT_CHUNKER_PARAMS,
    uploadConcurrency: 4,
    claimWaitS: 20,
  });
});

Deno.test("parseConfig() takes flags over the environment", () => {
  const config = parseConfig(
    ["--url=http://cp:1", "--token", "fst_flag", "--slots", "3", "--worker-id", "w-1"],
    {
      ...env,
      FLEETSHIP_URL: "http://env:2",
      FLEETSHIP_BUILD_SLOTS: "5",
      FLEETSHIP_WORKSPACE: "/w/",
    },
    host,
  );
  assert.ok(config !== "help");
  assert.equal(config.url, "http://cp:1");
  assert.equal(config.token, "fst_flag");
  assert.equal(config.slots, 3);
  assert.equal(config.workerId, "w-1");
  assert.equal(config.workspace, "/w");
});

Deno.test("parseConfig() reads the chunk sizes flag with k/m suffixes", () => {
  const config = parseConfig(["--url", "http://cp", "--chunk-sizes", "16k,64K,1m"], env, host);
  assert.ok(config !== "help");
  assert.deepEqual(
    [config.chunker.min_size, config.chunker.avg_size, config.chunker.max_size],
    [16 * 1024, 64 * 1024, 1024 * 1024],
  );
});

Deno.test("parseConfig() reports every problem at once", () => {
  const found = problems(
    [
      "--slots",
      "0",
      "--grace-s",
      "x",
      "--chunk-sizes",
      "1,2",
      "--bogus",
      "extra",
      "--worker-id",
      "a b",
    ],
    {},
  );
  assert.deepEqual(found, [
    "--bogus: unknown flag",
    'unexpected argument "extra"',
    "the control plane URL is required: --url or FLEETSHIP_URL",
    "a builder token is required: FLEETSHIP_BUILDER_TOKEN or --token",
    '--worker-id must be 1-128 of A-Z a-z 0-9 . _ : -, got "a b"',
    '--slots must be an integer in [1, 64], got "0"',
    '--grace-s must be an integer in [0, 86400], got "x"',
    '--chunk-sizes must be MIN,AVG,MAX in bytes (k/m suffixes), got "1,2"',
  ]);
});

Deno.test("parseConfig() names the environment variable a bad value came from", () => {
  assert.deepEqual(problems(["--url", "ftp://x"], { ...env, FLEETSHIP_BUILD_SLOTS: "many" }), [
    '--url must be an http:// or https:// URL, got "ftp://x"',
    'FLEETSHIP_BUILD_SLOTS must be an integer in [1, 64], got "many"',
  ]);
});

Deno.test("parseConfig() refuses chunk sizes the chunker cannot use", () => {
  const found = problems(["--url", "http://cp", "--chunk-sizes", "64k,16k,32m"]);
  assert.equal(found.length, 2);
  assert.match(found[0]!, /max_size must be an integer/);
  assert.match(found[1]!, /min_size <= avg_size <= max_size/);
});

Deno.test("parseConfig() refuses a flag without its value", () => {
  assert.deepEqual(problems(["--url", "http://cp", "--slots"]), ["--slots: needs a value"]);
});

Deno.test("parseConfig() answers --help before checking anything", () => {
  assert.equal(parseConfig(["--help", "--bogus"], {}, host), "help");
});

Deno.test("defaultWorkerId() replaces characters the API refuses", () => {
  assert.equal(defaultWorkerId({ ...host, hostname: "my host/α" }), "my-host---4242");
  assert.equal(defaultWorkerId({ ...host, hostname: "" }), "worker-4242");
});
