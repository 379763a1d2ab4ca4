// How fast and how correct the build-queue claim is: through the full local API (dev/libsql +
// wrangler dev), at the SQL layer (against the seed's two-statement claim and a mismatched
// index), and against a peer (graphile-worker on PostgreSQL). Prints Markdown tables.
//
//   sh dev/deno.sh run -A bench/queue/main.ts [--only=api,sql,peer] [--workers=1,10,100]
//     [--api-builds=500] [--api-seconds=25] [--sql-builds=5000] [--embedded-builds=30000]
//     [--seconds=3] [--big-queued=100000] [--big-history=100000] [--big-workers=1]
//     [--peer-jobs=10000] [--stale=50]
//
// Loopback only; every process it starts (and their children) is stopped by pid on the way
// out, on error and on Ctrl-C too. Defaults finish in about three minutes on 2 cores.

import { parseArgs } from "node:util";
import { apiBench } from "./api-bench.ts";
import { peerBench } from "./peer-bench.ts";
import { cpuSeconds, machineBusySeconds, Processes } from "./processes.ts";
import { sqlBench } from "./sql-bench.ts";
import { fmt, type OursFigure, pct } from "./stats.ts";

const SECTIONS = ["api", "sql", "peer"] as const;
type Section = (typeof SECTIONS)[number];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", default: SECTIONS.join(",") },
    workers: { type: "string", default: "1,10,100" },
    "api-builds": { type: "string", default: "500" },
    "api-seconds": { type: "string", default: "25" },
    "sql-builds": { type: "string", default: "5000" },
    "embedded-builds": { type: "string", default: "30000" },
    seconds: { type: "string", default: "3" },
    "big-queued": { type: "string", default: "100000" },
    "big-history": { type: "string", default: "100000" },
    "big-workers": { type: "string", default: "1" },
    "peer-jobs": { type: "string", default: "10000" },
    stale: { type: "string", default: "50" },
  },
});

const problems: string[] = [];
function count(flag: keyof typeof values, min: number): number {
  const text = String(values[flag]);
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min) problems.push(`--${flag} must be an integer ≥ ${min}`);
  return n;
}
function counts(flag: keyof typeof values): number[] {
  const list = String(values[flag]).split(",").map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 1)) {
    problems.push(`--${flag} must be a comma-separated list of positive integers`);
  }
  return list;
}
const only = String(values.only).split(",") as Section[];
for (const s of only) if (!SECTIONS.includes(s)) problems.push(`--only: unknown section ${s}`);
const opts = {
  workers: counts("workers"),
  apiBuilds: count("api-builds", 1),
  apiSeconds: count("api-seconds", 1),
  sqlBuilds: count("sql-builds", 1),
  embeddedBuilds: count("embedded-builds", 1),
  seconds: count("seconds", 1),
  bigQueued: count("big-queued", 1),
  bigHistory: count("big-history", 0),
  bigWorkers: counts("big-workers"),
  peerJobs: count("peer-jobs", 1),
  stale: count("stale", 1),
};
if (problems.length > 0) {
  console.error(`bench/queue: ${problems.join("; ")}`);
  Deno.exit(2);
}

const procs = new Processes();
const dir = await Deno.makeTempDir({ prefix: "bench-queue-" });
let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    await procs.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  })());
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => void cleanUp().then(() => Deno.exit(130)));
}

const say = (text: string) => console.log(text);
// Other people's processes share the machine; how much CPU they took is part of the result.
const started = {
  wall: performance.now(),
  busy: machineBusySeconds(),
  ours: cpuSeconds(Deno.pid, true),
};
let failed = false;
try {
  say(
    `# bench/queue — ${new Date().toISOString()} — ${navigator.hardwareConcurrency} cores, ` +
      `Deno ${Deno.version.deno}\n`,
  );
  if (only.includes("api")) {
    say("## 1. Through the full local API (wrangler dev + dev/libsql)\n");
    for (const t of await apiBench(procs, { dir, ...opts })) say(`${t}\n`);
    await procs.stopAll();
  }
  let ours: OursFigure[] = [];
  if (only.includes("sql")) {
    say("## 2. At the SQL layer (libSQL)\n");
    const sql = await sqlBench(procs, {
      dir,
      ...opts,
      queued: opts.sqlBuilds,
      embeddedQueued: opts.embeddedBuilds,
    });
    for (const t of sql.tables) say(`${t}\n`);
    ours = sql.ours;
    await procs.stopAll();
  }
  if (only.includes("peer")) {
    say("## 3. Peer: graphile-worker on PostgreSQL\n");
    for (const t of await peerBench(procs, { ...opts, jobs: opts.peerJobs, ours })) say(`${t}\n`);
    await procs.stopAll();
  }
  const wall = (performance.now() - started.wall) / 1000;
  const others = machineBusySeconds() - started.busy - (cpuSeconds(Deno.pid, true) - started.ours);
  say(
    `Run took ${fmt(wall)} s; processes not started by the bench used ${pct(
      others / wall,
    )} of one core meanwhile (of ${navigator.hardwareConcurrency} cores).`,
  );
} catch (error) {
  failed = true;
  console.error("bench/queue failed:", error);
} finally {
  await cleanUp();
}
Deno.exit(failed ? 1 : 0);
