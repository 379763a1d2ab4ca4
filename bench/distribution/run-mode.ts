// One mode of the distribution bench: a fresh relay and N fresh agents in one region, an app
// deployed there; each agent's finish is when it logs `download:finished` for the build.
import { join } from "node:path";
import {
  AGENT_FLAGS,
  DenoProcess,
  must,
  RELAY_FLAGS,
  relayMetric,
  until,
} from "../../tests/support/relay-agent.ts";
import { freePort, type Stack } from "../../tests/support/stack.ts";
import { type ProcStats, procStats, spentSince } from "./proc-stats.ts";
import { publish } from "./publish.ts";

export interface ModeOptions {
  mode: "mesh" | "relay-only";
  stack: Stack;
  secret: string;
  region: string;
  agents: number;
  artifact: Uint8Array;
  limitMiBs: number;
  uploadLimitMiBs: number | null;
  work: string;
  timeoutMs: number;
  /** Every process started, so that the caller can stop them whatever happens. */
  started: DenoProcess[];
}

export interface ModeResult {
  mode: string;
  finishesMs: number[];
  allMs: number;
  relayBytes: number;
  upstreamReads: number;
  chunks: number;
  peerPieces: number;
  relayPieces: number;
  /** Fallback asks the relay refused as busy (relay_chunks_busy_total). */
  relayBusy: number;
  /** CPU and peak RSS of each agent process, read before it stops. */
  stats: ProcStats[];
}

export async function runMode(o: ModeOptions): Promise<ModeResult> {
  const { stack } = o;
  const app = `dist-${o.mode}`;
  await must(stack, "POST", "/v1/applications", {
    token: stack.tokens.admin,
    body: {
      name: app,
      repo_url: `file:///srv/git/${app}.git`,
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${app}`,
      regions: [o.region],
    },
  });
  const relayToken = (
    await must(stack, "POST", "/v1/tokens", {
      token: stack.tokens.admin,
      body: { name: `${app} relay`, role: "relay", region: o.region },
    })
  ).token;
  const build = await publish(stack, app, o.artifact);

  const relayPort = await freePort();
  const relay = new DenoProcess(
    `${o.mode}-relay`,
    [
      ...RELAY_FLAGS,
      "region-relay/main.ts",
      ...["--url", stack.url, "--region", o.region, "--relay-id", `${o.mode}-relay`],
      ...["--hostname", "127.0.0.1", "--port", String(relayPort)],
      ...["--cache-dir", join(o.work, `${o.mode}-relay`), "--public-key", stack.publicKey],
    ],
    { FLEETSHIP_RELAY_TOKEN: relayToken },
    join(o.work, `${o.mode}-relay.log`),
  );
  o.started.push(relay);
  await relay.waitForEvent("relay:started");
  const relayUrl = `http://127.0.0.1:${relayPort}`;

  const agents: DenoProcess[] = [];
  for (let i = 0; i < o.agents; i++) {
    const name = `${o.mode}-${i}`;
    const peer = o.mode === "mesh" ? ["--peer-port", "0", "--peer-host", "127.0.0.1"] : [];
    const upload =
      o.mode === "mesh" && o.uploadLimitMiBs !== null
        ? ["--upload-limit-mib-s", String(o.uploadLimitMiBs)]
        : [];
    const agent = new DenoProcess(
      name,
      [
        ...AGENT_FLAGS,
        "agent-deno/main.ts",
        ...["--url", stack.url, "--region", o.region, "--machine-id", name],
        ...["--relay", relayUrl, "--state-dir", join(o.work, name)],
        ...["--public-key", stack.publicKey, "--app-port-base", String(await freePort())],
        ...["--download-limit-mib-s", String(o.limitMiBs), ...peer, ...upload],
      ],
      { FLEETSHIP_ENROLLMENT_SECRET: o.secret },
      join(o.work, `${name}.log`),
    );
    o.started.push(agent);
    agents.push(agent);
  }
  await Promise.all(agents.map((a) => a.waitForEvent("relay:connected", () => true, 60_000)));

  const finishes = new Map<string, number>();
  const atStart = await Promise.all(agents.map((a) => procStats(a.pid)));
  const t0 = Date.now();
  await must(stack, "POST", "/v1/deployments", {
    token: stack.tokens.deployer,
    body: { app, build_id: build.buildId },
  });
  await until(
    `${o.mode}: every agent downloaded build ${build.buildId}`,
    () => {
      for (const a of agents) {
        if (!finishes.has(a.name) && a.events("download:finished").length > 0)
          finishes.set(a.name, Date.now() - t0);
      }
      return finishes.size === agents.length;
    },
    o.timeoutMs,
  );
  const allMs = Date.now() - t0;
  const relayBytes = await relayMetric(relayUrl, "relay_chunk_bytes_served_total");
  const upstreamReads = await relayMetric(relayUrl, "relay_upstream_reads_total");
  const relayBusy = await relayMetric(relayUrl, "relay_chunks_busy_total");
  const stats = spentSince(atStart, await Promise.all(agents.map((a) => procStats(a.pid))));
  await Promise.all([...agents, relay].map((p) => p.stop()));
  let peerPieces = 0;
  let relayPieces = 0;
  for (const a of agents) {
    const e = a.events("mesh:finished")[0];
    peerPieces += e?.peer_pieces ?? 0;
    relayPieces += e?.relay_pieces ?? 0;
  }
  return {
    mode: o.mode,
    finishesMs: [...finishes.values()].sort((a, b) => a - b),
    allMs,
    relayBytes,
    upstreamReads,
    chunks: build.chunks,
    peerPieces,
    relayPieces,
    relayBusy,
    stats,
  };
}
