// A simulated deploy of one big build to a whole fleet (DESIGN section 9): by default 10 GiB to
// 100,000 machines in 10 regions, each region's agents choosing pieces with the agent's own
// pickPiece/pickFromPeers and getting peers from the relay's own Tracker (bench/simulate/region.ts).
//
//   sh dev/deno.sh run -A bench/simulate/main.ts [--machines 100000] [--regions 10] ...
//
// Regions are independent (each has its own bucket, relays and mesh), so they run in parallel
// workers, one per core. Prints the completion-time distribution against T0 = size / host
// bandwidth, bucket reads per region, relay load, then one JSON line.

import { availableParallelism } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import type { RegionResult, SimParams } from "./region.ts";

const { values: flags } = parseArgs({
  options: {
    machines: { type: "string", default: "100000" },
    regions: { type: "string", default: "10" },
    "relays-per-region": { type: "string", default: "4" },
    "size-gib": { type: "string", default: "10" },
    "piece-mib": { type: "string", default: "16" },
    "host-gbit": { type: "string", default: "10" },
    "relay-gbit": { type: "string", default: "25" },
    "bucket-gbit": { type: "string", default: "10" },
    "latency-ms": { type: "string", default: "1" },
    "bucket-latency-ms": { type: "string", default: "50" },
    "slow-fraction": { type: "string", default: "0.01" },
    "slow-factor": { type: "string", default: "10" },
    "dying-fraction": { type: "string", default: "0.005" },
    "goal-spread-ms": { type: "string", default: "500" },
    "max-peers": { type: "string", default: "12" },
    concurrency: { type: "string", default: "4" },
    /** The mesh's seedSlots; default half the concurrency, as agent-deno/main.ts sets it. */
    "seed-slots": { type: "string" },
    /**
     * The relay's --fallback-slots (default 32 of ~4 MiB chunks), in this model's 16 MiB
     * pieces: the same bytes in flight. 0: no bound, for comparison.
     */
    "relay-fallback-slots": { type: "string", default: "8" },
    /** peer-first (mesh.ts today) or piece-first (the picker before, for comparison). */
    picker: { type: "string", default: "peer-first" },
    workers: { type: "string", default: String(availableParallelism()) },
    seed: { type: "string", default: "1" },
  },
});

const num = (name: keyof typeof flags): number => {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--${name} must be a number ≥ 0`);
  return v;
};

function pickerFlag(): boolean {
  if (flags.picker !== "peer-first" && flags.picker !== "piece-first")
    throw new RangeError("--picker must be peer-first or piece-first");
  return flags.picker === "peer-first";
}

const MiB = 1024 * 1024;
const gbit = (g: number) => (g * 1e9) / 8;
const machines = num("machines");
const regions = Math.max(1, num("regions"));
const pieceBytes = num("piece-mib") * MiB;
const pieces = Math.ceil((num("size-gib") * 1024 * MiB) / pieceBytes);
const hostBps = gbit(num("host-gbit"));
const t0 = (pieces * pieceBytes) / hostBps;

const concurrency = Math.max(1, num("concurrency"));

const base = {
  relays: Math.max(1, num("relays-per-region")),
  pieces,
  pieceBytes,
  hostBps,
  relayBps: gbit(num("relay-gbit")),
  bucketBps: gbit(num("bucket-gbit")),
  latencyS: num("latency-ms") / 1000,
  bucketLatencyS: num("bucket-latency-ms") / 1000,
  slowFraction: num("slow-fraction"),
  slowFactor: Math.max(1, num("slow-factor")),
  dyingFraction: num("dying-fraction"),
  goalSpreadS: num("goal-spread-ms") / 1000,
  maxPeers: num("max-peers"),
  concurrency,
  seedSlots:
    flags["seed-slots"] === undefined
      ? Math.max(1, Math.floor(concurrency / 2))
      : Math.max(1, num("seed-slots")),
  relayGraceS: 2,
  relayFallbackSlots: num("relay-fallback-slots"),
  peerFirst: pickerFlag(),
  horizonS: 60 * t0 + 60,
  seed: num("seed"),
};
const params: SimParams[] = Array.from({ length: regions }, (_, region) => ({
  ...base,
  region,
  agents: Math.floor(machines / regions) + (region < machines % regions ? 1 : 0),
}));

console.log(
  `Simulating ${machines.toLocaleString("en")} machines in ${regions} regions ` +
    `(${base.relays} relays each): ${pieces} pieces of ${num("piece-mib")} MiB ` +
    `(${num("size-gib")} GiB), hosts ${num("host-gbit")} Gbit/s, T0 = ${t0.toFixed(2)} s.`,
);
console.log(
  `The real chunker cuts ~4 MiB chunks on average (2,560 for 10 GiB); the simulation moves ` +
    `${num("piece-mib")} MiB pieces so that 100,000 agents' piece choices (each scans the ` +
    `pieces it still lacks) fit in minutes. Links are modelled, not run.`,
);

const started = performance.now();
const cpuStart = process.cpuUsage();
const results = await runAll(params, Math.max(1, Math.min(num("workers"), regions)));
const wallS = (performance.now() - started) / 1000;

async function runAll(all: SimParams[], parallel: number): Promise<RegionResult[]> {
  const out: RegionResult[] = [];
  const queue = [...all];
  const lane = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      const result = await new Promise<RegionResult>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<RegionResult>) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`region ${next.region}: ${e.message}`));
        };
        worker.postMessage(next);
      });
      worker.terminate();
      out.push(result);
      console.error(
        `  region ${result.region}: ${result.agents} agents done at ${result.endS.toFixed(1)} s ` +
          `simulated, after ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return out.sort((a, b) => a.region - b.region);
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const full = results.flatMap((r) => r.finishFull).sort((a, b) => a - b);
const own = results.flatMap((r) => r.ownRatios).sort((a, b) => a - b);
const sum = (f: (r: RegionResult) => number) => results.reduce((s, r) => s + f(r), 0);
const qs = [0.5, 0.9, 0.99, 0.999, 1] as const;
const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "—");

console.log("\n### Completion (from the deploy; full-speed hosts)\n");
console.log("| quantile | seconds | × T0 |");
console.log("| -------- | ------- | ---- |");
for (const q of qs) {
  const v = quantile(full, q);
  console.log(`| ${q === 1 ? "max" : `p${q * 100}`} | ${fmt(v)} | ${fmt(v / t0)} |`);
}
console.log("\n### Each host against its own T0 (size / its own bandwidth; slow hosts included)\n");
console.log("| p50 | p99 | p99.9 | max |");
console.log("| --- | --- | ----- | --- |");
console.log(`| ${[0.5, 0.99, 0.999, 1].map((q) => fmt(quantile(own, q))).join(" | ")} |`);

console.log("\n### Per region\n");
console.log(
  "| region | agents | slow | died | unfinished | bucket reads (chunks × relays) | max reads of a chunk by a relay | pieces from relays / peers | fallback asks refused (relay_busy) | relay msgs/s mean / peak | tracker CPU s |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of results) {
  console.log(
    `| ${r.region} | ${r.agents} | ${r.slow} | ${r.died} | ${r.unfinished} | ${r.bucketReads} (${pieces} × ${base.relays}) | ${r.maxReadsPerChunkPerRelay} | ${r.relayPiecesServed} / ${r.peerPiecesServed} | ${r.relayBusy} | ${fmt(r.relayMessagesPerS.mean, 0)} / ${r.relayMessagesPerS.peak} | ${fmt(r.trackerCpuS)} |`,
  );
}

const allDone = quantile(full, 1);
const p999 = quantile(full, 0.999);
const readsOnce = results.every((r) => r.maxReadsPerChunkPerRelay <= 1);
console.log("\n### Targets (DESIGN section 9, issue 7)\n");
console.log("| target | figure | verdict |");
console.log("| --- | --- | --- |");
console.log(
  `| every full-speed host done in < 180 s | ${fmt(allDone)} s | ${allDone < 180 ? "met" : "MISSED"} |`,
);
console.log(
  `| p99.9 within 2 × T0 | ${fmt(p999 / t0)} × T0 | ${p999 <= 2 * t0 ? "met" : "MISSED"} |`,
);
console.log(
  `| each relay reads each chunk from its bucket once | at most ${Math.max(...results.map((r) => r.maxReadsPerChunkPerRelay))} | ${readsOnce ? "met" : "MISSED"} |`,
);
console.log(
  `| runs in under 5 minutes here | ${fmt(wallS, 0)} s | ${wallS < 300 ? "met" : "MISSED"} |`,
);
// The workers' CPU counts too: they are threads of this process.
const cpu = process.cpuUsage(cpuStart);
const cpuS = (cpu.user + cpu.system) / 1e6;
console.log(
  `\nPicks simulated: ${sum((r) => r.picks).toLocaleString("en")}; wall ${fmt(wallS, 0)} s, ` +
    `CPU ${fmt(cpuS, 0)} s, ${Math.min(num("workers"), regions)} workers.`,
);
console.log(
  JSON.stringify({
    mode: "simulate",
    machines,
    regions,
    size_gib: num("size-gib"),
    t0_s: Number(t0.toFixed(3)),
    p50_t0: Number((quantile(full, 0.5) / t0).toFixed(3)),
    p99_t0: Number((quantile(full, 0.99) / t0).toFixed(3)),
    p999_t0: Number((p999 / t0).toFixed(3)),
    max_s: Number(allDone.toFixed(2)),
    died: sum((r) => r.died),
    unfinished: sum((r) => r.unfinished),
    bucket_reads: sum((r) => r.bucketReads),
    max_reads_per_chunk_per_relay: Math.max(...results.map((r) => r.maxReadsPerChunkPerRelay)),
    relay_msgs_per_s_peak: Math.max(...results.map((r) => r.relayMessagesPerS.peak)),
    wall_s: Number(wallS.toFixed(1)),
  }),
);
