// The control path at fleet scale (DESIGN section 9, issue step 12): the real control plane
// (wrangler dev, as `npm start` runs it), R real relay processes of one region, and N simulated
// agents (bench/fanout/sim-agents.ts, many per process, one real WebSocket each) that say hello
// with labels, receive the signed goal, and report healthy if it places the app on them.
// One deployment per mode, timed:
// - goal: from POST /v1/deployments until each agent holds the signed goal (p50, p99, max);
// - status visible: from the last agent's report until GET /v1/deployments/:id counts every
//   placed machine healthy;
// - bytes of each relay status message (max) and of the region's summary (GET /v1/regions
//   status_bytes, what rollouts and the dashboard read), relay RSS and CPU per 1,000 agents,
//   messages per second into the control plane.
// Modes: `summary` (relays aggregate: per-app counts; the app placed on 3 agents of 4) and
// `list` (the path before step 12: relays send every machine, every agent placed), the
// baseline, each in its own region with its own relays and agents.
//
//   sh dev/deno.sh run -A bench/fanout/main.ts [--agents 20000] [--relays 4]
//     [--per-process 2500] [--modes summary,list] [--timeout-s 300]
//
// Loopback only; every process it starts is stopped by pid on the way out, on error too.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { placedOn } from "../../protocol/placement.ts";
import {
  DenoProcess,
  enrollmentSecret,
  type Json,
  must,
  publishBuild,
  RELAY_FLAGS,
  relayMetric,
  testArtifact,
  until,
} from "../../tests/support/relay-agent.ts";
import { freePort, type Stack, startStack } from "../../tests/support/stack.ts";
import { type ProcStats, procStats } from "../distribution/proc-stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    agents: { type: "string", default: "20000" },
    relays: { type: "string", default: "4" },
    "per-process": { type: "string", default: "2500" },
    modes: { type: "string", default: "summary,list" },
    "timeout-s": { type: "string", default: "300" },
  },
});
const N = Number(values.agents);
const R = Number(values.relays);
const perProcess = Number(values["per-process"]);
const modes = values.modes.split(",") as Mode[];
const timeoutMs = Number(values["timeout-s"]) * 1000;
type Mode = "summary" | "list";
const REGION: Record<Mode, string> = { summary: "us-east", list: "eu-west" };
const WEB = { pool: "web" };
const API = { pool: "api" };

interface Result {
  mode: Mode;
  agents: number;
  placed: number;
  goalMs: number[];
  statusVisibleMs: number;
  statusMsgBytesMax: number;
  statusMsgBytesLast: number;
  statusMessagesPerS: number;
  regionSummaryBytes: number;
  relayRssMiBPer1k: number;
  relayPeakRssMiBPer1k: number;
  relayCpuSPer1k: number;
  connectS: number;
}

const started: DenoProcess[] = [];
const work = await mkdtemp(join(tmpdir(), "fleetship-fanout-"));
let stack: Stack | null = null;
const stopAll = async () => {
  await Promise.all(started.map((p) => p.stop("SIGTERM", 5_000)));
  await stack?.stop();
  await rm(work, { recursive: true, force: true });
};
Deno.addSignalListener("SIGINT", () => void stopAll().then(() => Deno.exit(130)));

const rssMiB = async (pid: number) => {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
  } catch {
    return Number.NaN;
  }
};

async function runMode(mode: Mode, s: Stack, secret: string): Promise<Result> {
  const region = REGION[mode];
  const app = `fan-${mode}`;
  const placement = mode === "summary" ? { labels: WEB } : undefined;
  await must(s, "POST", "/v1/applications", {
    token: s.tokens.admin,
    body: {
      name: app,
      repo_url: `file:///srv/git/${app}.git`,
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${app}`,
      regions: [region],
      ...(placement ? { placement } : {}),
    },
  });
  const { buildId } = await publishBuild(s, app, (id) => testArtifact(id, { padBytes: 1024 }));

  const relays: { proc: DenoProcess; url: string }[] = [];
  for (let r = 0; r < R; r++) {
    const name = `${mode}-relay-${r}`;
    const token = (
      await must(s, "POST", "/v1/tokens", {
        token: s.tokens.admin,
        body: { name, role: "relay", region },
      })
    ).token;
    const port = await freePort();
    const proc = new DenoProcess(
      name,
      [
        ...RELAY_FLAGS,
        "region-relay/main.ts",
        ...["--url", s.url, "--region", region, "--relay-id", name],
        ...["--hostname", "127.0.0.1", "--port", String(port)],
        ...["--cache-dir", join(work, name), "--public-key", s.publicKey],
        ...["--max-agents", String(Math.ceil(N / R) + 100), "--status-format", mode],
      ],
      { FLEETSHIP_RELAY_TOKEN: token },
      join(work, `${name}.log`),
    );
    started.push(proc);
    relays.push({ proc, url: `http://127.0.0.1:${port}` });
  }
  await Promise.all(relays.map((r) => r.proc.waitForEvent("relay:started", () => true, 60_000)));

  // Every agent of a mode is placed in the baseline; in `summary`, 3 of 4 carry pool=web.
  // Agent g (counted over all processes) carries labels[g % labels.length].
  const labels = mode === "summary" ? [WEB, WEB, WEB, API] : [{}];
  let placed = 0;
  for (let g = 0; g < N; g++) if (placedOn(placement, labels[g % labels.length]!)) placed++;
  const sims: DenoProcess[] = [];
  const connectStart = Date.now();
  for (let first = 0; first < N; first += perProcess) {
    const count = Math.min(perProcess, N - first);
    const enrolled = await fetch(`${s.url}/v1/agents/enroll`, {
      method: "POST",
      headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
      body: JSON.stringify({ region, machine_id: `${mode}-sim-${first}` }),
    });
    const token = ((await enrolled.json()) as { token: string }).token;
    const proc = new DenoProcess(
      `${mode}-sim-${first}`,
      ["run", "-A", "bench/fanout/sim-agents.ts"],
      {
        FANOUT_SIM: JSON.stringify({
          relays: relays.map((r) => r.url),
          token,
          region,
          app,
          publicKey: s.publicKey,
          prefix: `${mode}-m`,
          first,
          count,
          labels,
          rampBatch: 250,
        }),
      },
    );
    started.push(proc);
    sims.push(proc);
  }
  await Promise.all(sims.map((p) => p.waitForEvent("sim:connected", () => true, timeoutMs)));
  const connectedNow = sims.reduce((n, p) => n + (p.events("sim:connected")[0]?.connected ?? 0), 0);
  if (connectedNow !== N) throw new Error(`${mode}: only ${connectedNow} of ${N} agents connected`);
  // Every relay holds its agents before the deployment; with summaries the control plane also
  // counts them all (a list names a machine only once it reports an app, so it cannot).
  await until(
    `${mode}: the relays hold ${N} agents`,
    async () =>
      (await Promise.all(relays.map((r) => relayMetric(r.url, "relay_agents_connected")))).reduce(
        (n, x) => n + x,
        0,
      ) === N,
    timeoutMs,
  );
  if (mode === "summary") {
    await until(
      `${mode}: the control plane counts ${N} machines`,
      async () => {
        const m = await must(s, "GET", `/v1/machines?region=${region}&limit=1`, {
          token: s.tokens.admin,
        });
        return m.relays.reduce((n: number, r: Json) => n + r.machines, 0) === N;
      },
      timeoutMs,
    );
  }
  const connectS = (Date.now() - connectStart) / 1000;
  const messagesBefore = await Promise.all(
    relays.map((r) => relayMetric(r.url, "relay_status_messages_total")),
  );
  const cpuBefore = await Promise.all(relays.map((r) => procStats(r.proc.pid)));
  const t0 = Date.now();
  const d = await must(s, "POST", "/v1/deployments", {
    token: s.tokens.deployer,
    body: { app, build_id: buildId },
  });
  await until(
    `${mode}: every agent holds the goal`,
    () => sims.every((p) => p.events("sim:done").length > 0),
    timeoutMs,
  );
  const done = sims.map((p) => p.events("sim:done")[0]!);
  const goalMs = done.flatMap((e) => (e.arrivals as number[]).map((a) => a - t0));
  const lastReport = Math.max(...done.flatMap((e) => e.reports as number[]));
  let visibleAt = 0;
  await until(
    `${mode}: the deployment counts ${placed} placed machines healthy`,
    async () => {
      const view = await must(s, "GET", `/v1/deployments/${d.id}`, { token: s.tokens.admin });
      const r = view.regions.find((x: Json) => x.region === region);
      if (r?.counts.healthy !== placed || r.machines !== placed) return false;
      visibleAt = Date.now();
      return true;
    },
    timeoutMs,
  );
  const windowS = (Date.now() - t0) / 1000;
  const cpuAfter = await Promise.all(relays.map((r) => procStats(r.proc.pid)));
  const rss = await Promise.all(relays.map((r) => rssMiB(r.proc.pid)));
  const messagesAfter = await Promise.all(
    relays.map((r) => relayMetric(r.url, "relay_status_messages_total")),
  );
  const statusMsgBytesMax = Math.max(
    ...(await Promise.all(relays.map((r) => relayMetric(r.url, "relay_status_message_bytes_max")))),
  );
  const statusMsgBytesLast = Math.max(
    ...(await Promise.all(relays.map((r) => relayMetric(r.url, "relay_status_message_bytes")))),
  );
  const regions = await must(s, "GET", "/v1/regions", { token: s.tokens.admin });
  const regionSummaryBytes = regions.regions.find((x: Json) => x.name === region).status_bytes;
  const perRelayK = N / R / 1000;
  const cpu = cpuAfter.map((a, i) => (a && cpuBefore[i] ? a.cpuS - cpuBefore[i]!.cpuS : 0));
  const peak = cpuAfter.map((a: ProcStats | null) => a?.peakRssMiB ?? Number.NaN);
  await Promise.all([...sims, ...relays.map((r) => r.proc)].map((p) => p.stop("SIGTERM", 5_000)));
  return {
    mode,
    agents: N,
    placed,
    goalMs: goalMs.sort((a, b) => a - b),
    statusVisibleMs: Math.max(0, visibleAt - lastReport),
    statusMsgBytesMax,
    statusMsgBytesLast,
    statusMessagesPerS:
      messagesAfter.reduce((n, x, i) => n + x - messagesBefore[i]!, 0) / Math.max(windowS, 1e-3),
    regionSummaryBytes,
    relayRssMiBPer1k: Math.max(...rss) / perRelayK,
    relayPeakRssMiBPer1k: Math.max(...peak) / perRelayK,
    relayCpuSPer1k: Math.max(...cpu) / perRelayK,
    connectS,
  };
}

const results: Result[] = [];
const began = Date.now();
try {
  stack = await startStack();
  const secret = await enrollmentSecret(stack);
  for (const mode of modes) results.push(await runMode(mode, stack, secret));
} finally {
  await stopAll();
}

const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!;
const kib = (b: number) => (b / 1024).toFixed(1);
console.log(
  `\n${N} simulated agents over ${R} relays (one region per mode), ${perProcess} per process, ` +
    `loopback, ${navigator.hardwareConcurrency} cores, ${((Date.now() - began) / 1000).toFixed(0)} s in all\n`,
);
console.log(
  "| path | placed | goal first ms | goal p50 ms | goal p99 ms | goal max ms | p99 < 1 s | status visible ms | relay status msg KiB (last / max) | region summary KiB | status msgs/s into CP | relay RSS MiB / 1k agents (peak) | relay CPU-s / 1k agents (deploy) | connect s |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.mode === "list" ? "list (before step 12, baseline)" : "summary"} | ${r.placed} | ${r.goalMs[0]} | ${q(r.goalMs, 0.5)} | ${q(r.goalMs, 0.99)} | ${r.goalMs.at(-1)} | ${q(r.goalMs, 0.99) < 1000 ? "met" : "MISSED"} | ${r.statusVisibleMs} | ${kib(r.statusMsgBytesLast)} / ${kib(r.statusMsgBytesMax)} | ${kib(r.regionSummaryBytes)} | ${r.statusMessagesPerS.toFixed(1)} | ${r.relayRssMiBPer1k.toFixed(1)} (${r.relayPeakRssMiBPer1k.toFixed(1)}) | ${r.relayCpuSPer1k.toFixed(2)} | ${r.connectS.toFixed(1)} |`,
  );
}
for (const r of results) {
  console.log(
    JSON.stringify({
      mode: "fanout",
      path: r.mode,
      agents: r.agents,
      relays: R,
      placed: r.placed,
      goal_first_ms: r.goalMs[0],
      goal_p50_ms: q(r.goalMs, 0.5),
      goal_p99_ms: q(r.goalMs, 0.99),
      goal_max_ms: r.goalMs.at(-1),
      status_visible_ms: r.statusVisibleMs,
      status_msg_bytes_last: r.statusMsgBytesLast,
      status_msg_bytes_max: r.statusMsgBytesMax,
      region_summary_bytes_max: r.regionSummaryBytes,
      status_msgs_per_s: +r.statusMessagesPerS.toFixed(1),
      relay_rss_mib_per_1k: +r.relayRssMiBPer1k.toFixed(1),
      relay_cpu_s_per_1k: +r.relayCpuSPer1k.toFixed(3),
    }),
  );
}
