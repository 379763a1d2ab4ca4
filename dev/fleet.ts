import { log } from "./log.ts";
import { type Child, spawn } from "./processes.ts";
import { apiClient, SAMPLE_APP } from "./sample-flow.ts";

// biome-ignore lint/suspicious/noExplicitAny: the launcher reads API answers loosely; the API validates them
type Json = any;

export interface FleetOptions {
  root: string;
  data: string;
  url: string;
  admin: string;
  publicKey: string;
  enrollmentSecret: string;
  regions: string[];
  relaysPerRegion: number;
  agentsPerRegion: number;
  relayPortBase: number;
  appPortBase: number;
}

export interface Fleet {
  children: Child[];
  relays: Record<string, string[]>;
}

const RELAY_PERMISSIONS = [
  "--unstable-kv",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=hostname",
];
// All: the agent reads /proc to prove an app's port is its app's (Deno gates /proc behind
// --allow-all; the --allow-run an agent needs grants as much in effect).
const AGENT_PERMISSIONS = ["--unstable-kv", "--allow-all"];

/**
 * Starts the local fleet: `relaysPerRegion` relays and `agentsPerRegion` agents in every
 * region, real Deno processes of region-relay/ and agent-deno/ on loopback. Relays get a relay
 * token of their region (minted once and kept in `data`); agents enroll with the secret.
 */
export async function startFleet(o: FleetOptions, children: Child[]): Promise<Fleet> {
  const call = apiClient(o.url);
  const tokensFile = `${o.data}/relay-tokens.json`;
  let relayTokens: Record<string, string> = {};
  try {
    relayTokens = JSON.parse(await Deno.readTextFile(tokensFile));
  } catch {
    // first start: mint below
  }
  const relays: Record<string, string[]> = {};
  let port = o.relayPortBase;
  let appPort = o.appPortBase;
  const started: Promise<string>[] = [];
  for (const region of o.regions) {
    if (!relayTokens[region]) {
      const r = await call<{ token: string }>("POST", "/v1/tokens", o.admin, {
        name: `local relays ${region}`,
        role: "relay",
        region,
      });
      if (r.status !== 201)
        throw new Error(`minting a relay token for ${region}: ${JSON.stringify(r.body)}`);
      relayTokens[region] = r.body.token;
      await Deno.writeTextFile(tokensFile, JSON.stringify(relayTokens), { mode: 0o600 });
    }
    relays[region] = [];
    for (let i = 1; i <= o.relaysPerRegion; i++) {
      const id = `${region}-relay-${i}`;
      const p = port++;
      const relay = spawn(
        id,
        Deno.execPath(),
        [
          "run",
          ...RELAY_PERMISSIONS,
          `${o.root}region-relay/main.ts`,
          "--url",
          o.url,
          "--region",
          region,
          "--relay-id",
          id,
          "--hostname",
          "127.0.0.1",
          "--port",
          String(p),
          "--cache-dir",
          `${o.data}/relays/${id}`,
          "--public-key",
          o.publicKey,
        ],
        { FLEETSHIP_RELAY_TOKEN: relayTokens[region]! },
      );
      children.push(relay);
      started.push(relay.waitFor(/relay:started/, 60_000));
      relays[region]!.push(`http://127.0.0.1:${p}`);
    }
  }
  await Promise.all(started);
  log("info", "stack:phase", { phase: "relays", relays });
  const agents: Promise<string>[] = [];
  for (const region of o.regions) {
    for (let i = 1; i <= o.agentsPerRegion; i++) {
      const id = `${region}-m${i}`;
      // Each agent gives its apps ports of their own, so nine "machines" share one host.
      const base = appPort;
      appPort += 10;
      const agent = spawn(
        id,
        Deno.execPath(),
        [
          "run",
          ...AGENT_PERMISSIONS,
          `${o.root}agent-deno/main.ts`,
          "--url",
          o.url,
          "--region",
          region,
          "--machine-id",
          id,
          ...relays[region]!.flatMap((r) => ["--relay", r]),
          "--state-dir",
          `${o.data}/agents/${id}`,
          "--public-key",
          o.publicKey,
          "--app-port-base",
          String(base),
          // Agents share pieces with each other (the mesh); the relays only seed.
          "--peer-port",
          "0",
          "--peer-host",
          "127.0.0.1",
        ],
        { FLEETSHIP_ENROLLMENT_SECRET: o.enrollmentSecret },
      );
      children.push(agent);
      agents.push(agent.waitFor(/agent:started/, 60_000));
    }
  }
  await Promise.all(agents);
  log("info", "stack:phase", {
    phase: "agents",
    per_region: o.agentsPerRegion,
    app_ports_from: o.appPortBase,
  });
  return { children, relays };
}

/** Deploys a build of the sample app (unless the goal already runs it) and waits until every machine is healthy. */
export async function deploySample(
  url: string,
  deployer: string,
  buildId: number,
  timeoutMs = 180_000,
): Promise<number> {
  const call = apiClient(url);
  const goal = (await call<Json>("GET", "/v1/goal", deployer)).body;
  let id: number;
  if (goal.apps?.[SAMPLE_APP]?.build_id === buildId) {
    id = goal.apps[SAMPLE_APP].deployment_id;
  } else {
    const r = await call<Json>("POST", "/v1/deployments", deployer, {
      app: SAMPLE_APP,
      build_id: buildId,
    });
    if (r.status !== 201)
      throw new Error(`deploying the sample build ${buildId}: ${JSON.stringify(r.body)}`);
    id = r.body.id;
  }
  log("info", "stack:phase", { phase: "deploy", deployment_id: id, build_id: buildId });
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const d = (await call<Json>("GET", `/v1/deployments/${id}`, deployer)).body;
    const healthy = d.regions
      .map((r: Json) => `${r.region} ${r.counts.healthy}/${r.machines}`)
      .join(", ");
    const now = `${d.status} ${healthy} ${d.waiting ?? ""}`;
    if (now !== last) {
      log("info", "stack:progress", {
        phase: "deploy",
        deployment_id: id,
        status: d.status,
        healthy,
        waiting: d.waiting,
      });
      last = now;
    }
    const everyoneHealthy = d.regions.every(
      (r: Json) => r.machines > 0 && r.counts.healthy === r.machines,
    );
    if (d.status === "SUCCEEDED" && everyoneHealthy) return id;
    if (["FAILED", "ROLLED_BACK", "ABORTED", "SUPERSEDED"].includes(d.status)) {
      throw new Error(`the sample deployment ${id} ended ${d.status}: ${d.reason}`);
    }
    if (Date.now() > deadline)
      throw new Error(
        `the sample deployment ${id} did not finish within ${timeoutMs / 1000} s: ${now}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}
