import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./config.ts";

const base = ["--region", "eu-west", "--relay", "http://127.0.0.1:7101", "--token", "t"];

function seedSlots(args: string[], env: Record<string, string> = {}): number {
  const config = parseConfig(args, env, "host");
  assert.notEqual(config, "help");
  return (config as Exclude<typeof config, "help">).seedSlots;
}

Deno.test("parseConfig: seed slots default to half the download concurrency, at least 1", () => {
  assert.equal(seedSlots(base), 2);
  assert.equal(seedSlots([...base, "--download-concurrency", "7"]), 3);
  assert.equal(seedSlots([...base, "--download-concurrency", "1"]), 1);
  assert.equal(seedSlots([...base, "--seed-slots", "4"]), 4);
  assert.equal(seedSlots(base, { FLEETSHIP_SEED_SLOTS: "3" }), 3);
});

Deno.test("parseConfig refuses seed slots out of range, with every problem listed", () => {
  assert.throws(
    () => parseConfig([...base, "--seed-slots", "0", "--download-concurrency", "x"], {}, "host"),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems.some((p) => p.includes("--seed-slots")) &&
      err.problems.some((p) => p.includes("--download-concurrency")),
  );
});

function labels(args: string[], env: Record<string, string> = {}): Record<string, string> {
  const config = parseConfig(args, env, "host");
  assert.notEqual(config, "help");
  return (config as Exclude<typeof config, "help">).labels;
}

Deno.test("parseConfig: labels from repeated --label, else FLEETSHIP_LABELS, else none", () => {
  assert.deepEqual(labels(base), {});
  assert.deepEqual(labels([...base, "--label", "pool=web", "--label", "zone=b"]), {
    pool: "web",
    zone: "b",
  });
  assert.deepEqual(labels(base, { FLEETSHIP_LABELS: "pool=api, rack=7" }), {
    pool: "api",
    rack: "7",
  });
  // A flag wins over the environment, whole.
  assert.deepEqual(labels([...base, "--label", "pool=web"], { FLEETSHIP_LABELS: "rack=7" }), {
    pool: "web",
  });
});

Deno.test("parseConfig refuses a label that is not key=value or is given twice", () => {
  for (const bad of [
    ["--label", "pool"],
    ["--label", "=web"],
    ["--label", "a=1", "--label", "a=2"],
  ]) {
    assert.throws(
      () => parseConfig([...base, ...bad], {}, "host"),
      (err: unknown) =>
        err instanceof ConfigError && err.problems.some((p) => p.startsWith("--label:")),
      bad.join(" "),
    );
  }
});
