import assert from "node:assert/strict";
import { type ConfigSources, resolveConnection } from "./config.ts";
import { CliError } from "./errors.ts";

const LOCAL = JSON.stringify({
  control_plane_url: "http://127.0.0.1:8787",
  tokens: { admin: "adm", deployer: "dep", builder: "bld" },
});

function sources(env: Record<string, string>, files: Record<string, string> = {}): ConfigSources {
  return {
    env: (n) => env[n],
    readTextFile: (p) =>
      files[p] === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${p}`))
        : Promise.resolve(files[p]),
    defaultLocalFile: "/repo/.data/local.json",
  };
}

Deno.test("resolveConnection() prefers flags, then the environment, then local.json", async () => {
  const files = { "/repo/.data/local.json": LOCAL };
  const env = { FLEETSHIP_URL: "http://env:1/", FLEETSHIP_TOKEN: "envtok" };
  assert.deepEqual(
    await resolveConnection(
      { url: "https://flag", token: "flagtok" },
      "deployer",
      sources(env, files),
    ),
    { url: "https://flag", token: "flagtok" },
  );
  assert.deepEqual(await resolveConnection({}, "deployer", sources(env, files)), {
    url: "http://env:1",
    token: "envtok",
  });
  assert.deepEqual(await resolveConnection({}, "deployer", sources({}, files)), {
    url: "http://127.0.0.1:8787",
    token: "dep",
  });
  assert.deepEqual(await resolveConnection({ url: "http://x" }, "admin", sources({}, files)), {
    url: "http://x",
    token: "adm",
  });
});

Deno.test("resolveConnection() reads local.json from FLEETSHIP_DATA when set", async () => {
  const got = await resolveConnection(
    {},
    "admin",
    sources({ FLEETSHIP_DATA: "/tmp/stack/" }, { "/tmp/stack/local.json": LOCAL }),
  );
  assert.equal(got.token, "adm");
});

Deno.test("resolveConnection() without any source is a usage error saying what to do", async () => {
  await assert.rejects(resolveConnection({}, "deployer", sources({})), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /\/repo\/\.data\/local\.json does not exist/);
    assert.match(err.message, /--url and --token/);
    return true;
  });
});

Deno.test("resolveConnection() reports every problem together", async () => {
  const files = { "/repo/.data/local.json": JSON.stringify({ tokens: {} }) };
  await assert.rejects(resolveConnection({}, "admin", sources({}, files)), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.match(err.message, /has no control_plane_url/);
    assert.match(err.message, /has no admin token/);
    return true;
  });
  await assert.rejects(
    resolveConnection({ url: "ftp://x", token: "t" }, "admin", sources({})),
    /must be http:\/\/ or https:\/\//,
  );
  await assert.rejects(
    resolveConnection({}, "admin", sources({}, { "/repo/.data/local.json": "{" })),
    /is not valid JSON/,
  );
});
