// Distribution on one machine (DESIGN section 9): N agent processes and one relay fetch one
// artifact, our mesh, relay-only and webtorrent (the BitTorrent baseline: webtorrent 1.x and
// bittorrent-tracker from npm, under the project's Node) side by side. Every agent's download
// is limited to B by its own token bucket (no tc/network namespaces here), in the mesh its
// upload to peers too; webtorrent peers get the same B through webtorrent's own throttles.
// Beside them, the floor: the CPU per GiB of the verify/write/re-hash work every agent must do,
// measured in this process (floor.ts).
//
//   sh dev/deno.sh run -A bench/distribution/main.ts [--agents 24] [--size-mib 256]
//     [--limit-mib-s 4] [--upload-limit-mib-s B|none] [--modes mesh,relay-only,webtorrent]
//     [--timeout-s 600]
//
// Loopback only; every process it starts is stopped by pid on the way out, on error too.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fillPseudoRandom } from "../../protocol/test-support.ts";
import { type DenoProcess, enrollmentSecret } from "../../tests/support/relay-agent.ts";
import { startStack } from "../../tests/support/stack.ts";
import { type Floor, measureFloor } from "./floor.ts";
import { type ModeResult, runMode } from "./run-mode.ts";
import { runWebtorrent } from "./run-webtorrent.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    agents: { type: "string", default: "24" },
    "size-mib": { type: "string", default: "256" },
    "limit-mib-s": { type: "string", default: "4" },
    "upload-limit-mib-s": { type: "string", default: "" },
    modes: { type: "string", default: "mesh,relay-only,webtorrent" },
    "timeout-s": { type: "string", default: "600" },
  },
});
const agents = Number(values.agents);
const sizeMiB = Number(values["size-mib"]);
const limit = Number(values["limit-mib-s"]);
const uploadRaw = values["upload-limit-mib-s"] || String(limit);
const uploadLimit = uploadRaw === "none" ? null : Number(uploadRaw);
const modes = values.modes.split(",") as ("mesh" | "relay-only" | "webtorrent")[];
const idealS = sizeMiB / limit;

const started: DenoProcess[] = [];
const work = await mkdtemp(join(tmpdir(), "fleetship-dist-"));
let stack: Awaited<ReturnType<typeof startStack>> | null = null;
const stopAll = async () => {
  await Promise.all(started.map((p) => p.stop("SIGTERM", 5_000)));
  await stack?.stop();
  await rm(work, { recursive: true, force: true });
};
Deno.addSignalListener("SIGINT", () => void stopAll().then(() => Deno.exit(130)));

const results: ModeResult[] = [];
let floor: Floor | null = null;
const began = Date.now();
try {
  stack = await startStack();
  const secret = await enrollmentSecret(stack);
  const artifact = new Uint8Array(sizeMiB * 1024 * 1024);
  fillPseudoRandom(artifact, 42);
  artifact.set(new TextEncoder().encode("#!/bin/sh\nexec sleep 100000\n"));
  // The CPU no agent can skip for this artifact, measured here in the same run (floor.ts).
  floor = await measureFloor(artifact, work);
  const region = { mesh: "us-east", "relay-only": "eu-west" } as const;
  // Every mode gets the same agents, artifact and links.
  const common = {
    agents,
    artifact,
    limitMiBs: limit,
    uploadLimitMiBs: uploadLimit,
    work,
    timeoutMs: Number(values["timeout-s"]) * 1000,
  };
  for (const mode of modes) {
    results.push(
      mode === "webtorrent"
        ? await runWebtorrent(common)
        : await runMode({ ...common, mode, stack, secret, region: region[mode], started }),
    );
  }
} finally {
  await stopAll();
}

const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!;
const s = (ms: number) => (ms / 1000).toFixed(1);
const n = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const gib = sizeMiB / 1024;
/** Mean CPU-seconds per GiB delivered, per agent; the largest peak RSS of any agent. */
const cost = (r: ModeResult) => ({
  cpuPerGiB: r.stats.reduce((t, x) => t + x.cpuS, 0) / Math.max(1, r.stats.length) / gib,
  peakRss: Math.max(...r.stats.map((x) => x.peakRssMiB)),
});
console.log(
  `\n${agents} agents, ${sizeMiB} MiB artifact, download limit B = ${limit} MiB/s per agent ` +
    `(the agents' own token buckets, webtorrent's throttles; upload limit ${uploadLimit === null ? "none" : `${uploadLimit} MiB/s`}; the origin unlimited), ` +
    `T0 = size/B = ${idealS.toFixed(1)} s, loopback, ${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  "| mode | all complete s | agent p50 s | agent p99 s | T0 s | max / T0 (mesh ≤1.3) | origin egress / size (mesh ≤1.2) | upstream reads / chunks | pieces from peers / relay (relay_busy refusals) | CPU-s per GiB per agent (≤2) | peak agent RSS MiB |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const c = cost(r);
  console.log(
    `| ${r.mode} | ${s(r.allMs)} | ${s(q(r.finishesMs, 0.5))} | ${s(q(r.finishesMs, 0.99))} | ${idealS.toFixed(1)} | ${(r.allMs / 1000 / idealS).toFixed(2)} | ${n(r.relayBytes / (sizeMiB * 1024 * 1024))} | ${n(r.upstreamReads, 0)} / ${r.chunks} | ${n(r.peerPieces, 0)} / ${n(r.relayPieces, 0)} (${n(r.relayBusy, 0)}) | ${n(c.cpuPerGiB)} | ${n(c.peakRss, 0)} |`,
  );
}
if (floor) {
  console.log(
    `| floor (verify, write, read back, whole-file hash; no network) | | | | | | | | | ${n(floor.perGiB)} | |`,
  );
  console.log(
    `\nFloor per GiB: chunk sha256 ${n(floor.hashS / gib)} + write and fsync ${n(floor.writeS / gib)} + read back ${n(floor.readBackS / gib)} + whole-file sha256 ${n(floor.wholeHashS / gib)} CPU-s: an agent spends this before a byte crosses a socket.`,
  );
}
for (const r of results) {
  const c = cost(r);
  console.log(
    JSON.stringify({
      mode: r.mode,
      agents,
      size_mib: sizeMiB,
      limit_mib_s: limit,
      p50_t0: +(q(r.finishesMs, 0.5) / 1000 / idealS).toFixed(2),
      p99_t0: +(q(r.finishesMs, 0.99) / 1000 / idealS).toFixed(2),
      max_t0: +(r.allMs / 1000 / idealS).toFixed(2),
      origin_copies: +(r.relayBytes / (sizeMiB * 1024 * 1024)).toFixed(2),
      cpu_s_per_gib: +c.cpuPerGiB.toFixed(2),
      peak_rss_mib: Math.round(c.peakRss),
    }),
  );
}
if (floor) {
  console.log(
    JSON.stringify({ mode: "floor", size_mib: sizeMiB, cpu_s_per_gib: +floor.perGiB.toFixed(2) }),
  );
}
console.log(`\nRun took ${s(Date.now() - began)} s.`);
