/**
 * `npm start`: the whole system on one machine, on embedded defaults: the local libSQL server
 * on a file under .data/, migrations, local tokens in .data/local.json, the control plane under
 * `wrangler dev` (local Durable Objects, R2 and Queues), a build worker, two relays and three
 * agents per region; it builds, replicates and deploys the sample app, then prints READY.
 * `--bare`: only the database and the control plane. Ctrl-C stops everything it started.
 */
import { ConfigError, usageError } from "../protocol/flags.ts";
import { generateSigningKeys } from "../protocol/signing.ts";
import { deploySample, startFleet } from "./fleet.ts";
import { log } from "./log.ts";
import { migrateDatabase } from "./migrate.ts";
import { assertPortFree, type Child, spawn } from "./processes.ts";
import { buildAndReplicate, ensureSampleApp } from "./sample-flow.ts";
import { parseStartConfig, USAGE } from "./start-config.ts";
import { mintToken } from "./tokens.ts";

const root = new URL("..", import.meta.url).pathname;
let parsed: ReturnType<typeof parseStartConfig>;
try {
  parsed = parseStartConfig(Deno.args, Deno.env.toObject(), root);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(usageError("npm start", err.problems, USAGE));
  Deno.exit(2);
}
if (parsed === "help") {
  console.log(USAGE);
  Deno.exit(0);
}
const options = parsed;
const { port, libsqlPort, data } = options;

interface LocalFile {
  control_plane_url: string;
  libsql_url: string;
  regions: { name: string; relays: string[] }[];
  tokens: { admin: string; deployer: string; builder: string };
}

const children: Child[] = [];
let stopping = false;
async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log("info", "stack:stopping", {
      children: children.map((c) => ({ name: c.name, pid: c.pid })),
    });
    for (const c of [...children].reverse()) await c.stop();
    log("info", "stack:stopped");
  }
  Deno.exit(code);
}
Deno.addSignalListener("SIGINT", () => void stopAll(0));
Deno.addSignalListener("SIGTERM", () => void stopAll(0));

async function devVars(): Promise<Record<string, string>> {
  const path = `${data}/.dev.vars`;
  const vars: Record<string, string> = {};
  try {
    for (const line of (await Deno.readTextFile(path)).split("\n")) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) vars[m[1]!] = m[2]!;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  let changed = false;
  if (!vars.TOKEN_PEPPER) {
    vars.TOKEN_PEPPER = Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) =>
      b.toString(16).padStart(2, "0"),
    ).join("");
    changed = true;
  }
  if (!vars.SIGNING_KEY) {
    vars.SIGNING_KEY = (await generateSigningKeys()).privateKey;
    changed = true;
  }
  if (!vars.ENROLLMENT_SECRET) {
    vars.ENROLLMENT_SECRET = Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) =>
      b.toString(16).padStart(2, "0"),
    ).join("");
    changed = true;
  }
  vars.LIBSQL_AUTH_TOKEN ??= "";
  if (changed) {
    const body = Object.entries(vars)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
    await Deno.writeTextFile(
      path,
      `# written by npm start; local secrets for wrangler dev\n${body}\n`,
      { mode: 0o600 },
    );
  }
  return vars;
}

async function readLocal(): Promise<LocalFile | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${data}/local.json`)) as LocalFile;
  } catch {
    return undefined;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitHealthy(url: string, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${url}/healthz`);
      const body = await r.json();
      if (r.status === 200) return body;
      last = JSON.stringify(body);
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`control plane at ${url} not healthy within ${timeoutMs} ms: ${last}`);
}

try {
  assertPortFree(libsqlPort, "libSQL server", "--libsql-port or FLEETSHIP_LIBSQL_PORT");
  assertPortFree(port, "control plane", "--port or FLEETSHIP_PORT");
  if (!options.bare) {
    for (let i = 0; i < 6; i++) {
      assertPortFree(
        options.relayPortBase + i,
        "a region relay",
        "--relay-port-base or FLEETSHIP_RELAY_PORT_BASE",
      );
    }
  }
  await Deno.mkdir(data, { recursive: true });
  const vars = await devVars();

  log("info", "stack:phase", { phase: "database", file: `${data}/control.db` });
  const libsql = spawn("libsql", Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi",
    "--allow-sys",
    `${root}dev/libsql/main.ts`,
    "--port",
    String(libsqlPort),
    "--file",
    `${data}/control.db`,
  ]);
  children.push(libsql);
  await libsql.waitFor(/libsql:listening/, 30_000);
  const libsqlUrl = `http://127.0.0.1:${libsqlPort}`;
  await migrateDatabase(libsqlUrl);
  log("info", "stack:phase", { phase: "migrated", libsql_url: libsqlUrl });

  const controlPlaneUrl = `http://127.0.0.1:${port}`;
  let local = await readLocal();
  if (!local) {
    const mint = (role: "admin" | "deployer" | "builder") =>
      mintToken(libsqlUrl, vars.TOKEN_PEPPER!, { role, name: `local ${role}` }).then(
        (t) => t.token,
      );
    local = {
      control_plane_url: controlPlaneUrl,
      libsql_url: libsqlUrl,
      regions: ["us-east", "eu-west", "ap-south"].map((name) => ({ name, relays: [] })),
      tokens: {
        admin: await mint("admin"),
        deployer: await mint("deployer"),
        builder: await mint("builder"),
      },
    };
  }
  local.control_plane_url = controlPlaneUrl;
  local.libsql_url = libsqlUrl;
  await Deno.writeTextFile(`${data}/local.json`, `${JSON.stringify(local, null, 2)}\n`, {
    mode: 0o600,
  });
  log("info", "stack:phase", { phase: "tokens", file: `${data}/local.json` });

  log("info", "stack:phase", { phase: "control-plane", url: controlPlaneUrl });
  const wrangler = spawn(
    "wrangler",
    `${root}node_modules/.bin/node`,
    [
      `${root}node_modules/wrangler/bin/wrangler.js`,
      "dev",
      "--cwd",
      root,
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--persist-to",
      `${data}/wrangler`,
      "--env-file",
      `${data}/.dev.vars`,
      "--var",
      `LIBSQL_URL:${libsqlUrl}`,
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
      // An inspector port of its own, so several stacks on one machine never collide.
      "--inspector-port",
      String(freePort()),
    ],
    { WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
  );
  children.push(wrangler);
  const health = await Promise.race([
    waitHealthy(controlPlaneUrl, 90_000),
    wrangler.exited.then((s) => {
      throw new Error(`wrangler dev exited (code ${s.code}) before the control plane was healthy`);
    }),
  ]);
  log("info", "stack:healthy", { health });
  if (!options.bare) {
    log("info", "stack:phase", { phase: "build-worker" });
    const worker = spawn(
      "build-worker",
      Deno.execPath(),
      [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        "--allow-sys",
        `${root}build-worker/main.ts`,
        "--url",
        controlPlaneUrl,
        "--workspace",
        `${data}/build-worker`,
        "--worker-id",
        "local-worker-1",
      ],
      { FLEETSHIP_BUILDER_TOKEN: local.tokens.builder },
    );
    children.push(worker);
    const repo = await ensureSampleApp(controlPlaneUrl, local.tokens.admin, data);
    log("info", "stack:phase", { phase: "sample-app", repo: repo.repoUrl, commits: repo.commits });
    const buildId = await buildAndReplicate(
      controlPlaneUrl,
      local.tokens.deployer,
      repo.commits[0]!,
    );
    log("info", "stack:phase", { phase: "deployable", build_id: buildId });
    const publicKey = (
      (await (await fetch(`${controlPlaneUrl}/v1/signing-key`)).json()) as { public_key: string }
    ).public_key;
    const regions = local.regions.map((r) => r.name);
    const fleet = await startFleet(
      {
        root,
        data,
        url: controlPlaneUrl,
        admin: local.tokens.admin,
        publicKey,
        enrollmentSecret: vars.ENROLLMENT_SECRET!,
        regions,
        relaysPerRegion: 2,
        agentsPerRegion: 3,
        relayPortBase: options.relayPortBase,
        appPortBase: options.appPortBase,
      },
      children,
    );
    local.regions = regions.map((name) => ({ name, relays: fleet.relays[name] ?? [] }));
    await Deno.writeTextFile(`${data}/local.json`, `${JSON.stringify(local, null, 2)}\n`, {
      mode: 0o600,
    });
    await deploySample(controlPlaneUrl, local.tokens.deployer, buildId);
    log("info", "stack:phase", {
      phase: "deployed",
      build_id: buildId,
      app_ports_from: options.appPortBase,
    });
  }
  console.log(`READY ${controlPlaneUrl}/ui`);
  const first = await Promise.race(children.map((c) => c.exited.then((s) => ({ c, s }))));
  if (stopping) await new Promise(() => {}); // stopAll is under way and exits the process
  log("error", "stack:child-exited", { child: first.c.name, code: first.s.code });
  await stopAll(1);
} catch (err) {
  if (stopping) await new Promise(() => {});
  log("error", "stack:failed", { error: err instanceof Error ? err.message : String(err) });
  await stopAll(1);
}
