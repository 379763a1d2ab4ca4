// Table 1: the claim through the whole local API. N builds are seeded in SQL, then 1, 10 and
// 100 workers loop POST /v1/worker/claim → POST /v1/worker/builds/:id/complete over HTTP
// until the queue is empty (or --api-seconds pass); then one run that only claims, for the
// endpoint's own ceiling, and the fencing check (fencing.ts), which tries stale leases.

import { type Client, createClient } from "@libsql/client";
import { drive, type QueueWorker } from "./drive.ts";
import { fencingTable } from "./fencing.ts";
import { BENCH_APP, countTaken, seedQueue } from "./libsql.ts";
import { cpuMeter, type Processes } from "./processes.ts";
import { type ApiClaim, apiWorker, call, type Stack, startStack } from "./stack.ts";
import { fmt, ms, pct, quantile, table } from "./stats.ts";

export interface ApiBenchOptions {
  readonly dir: string;
  readonly workers: readonly number[];
  readonly apiBuilds: number;
  /** A run stops here even if the queue is not empty (then `lost` counts what is left over). */
  readonly apiSeconds: number;
  readonly stale: number;
}

const TARGET_CLAIMS_PER_S = 500;
const TARGET_P99_MS = 100;
export async function apiBench(procs: Processes, opts: ApiBenchOptions): Promise<string[]> {
  const stack = await startStack(procs, opts.dir);
  const created = await call(stack, "/v1/applications", {
    token: stack.tokens.admin,
    body: {
      name: BENCH_APP,
      repo_url: "https://example.invalid/bench.git",
      build_command: "true",
      artifact_path: "out/app",
      run_command: "./app",
      // The primary region only: completion then copies no manifest to other regions and
      // plans no replication, which is not what this table measures.
      regions: ["us-east"],
    },
  });
  if (created.status !== 201 && created.status !== 200) {
    throw new Error(`POST /v1/applications: HTTP ${created.status}: ${await created.text()}`);
  }
  const admin = createClient({ url: stack.libsqlUrl });
  try {
    // The claim endpoint's own ceiling: the same workers, completing nothing. Run first, on
    // a quiet control plane (a completed build leaves background work: ticker, replication).
    const middle = opts.workers[Math.floor(opts.workers.length / 2)] ?? 1;
    const claimOnly = await run(stack, admin, opts, { workers: middle, claimOnly: true });
    const rows: string[][] = [];
    for (const workers of opts.workers) {
      rows.push(await run(stack, admin, opts, { workers, claimOnly: false }));
    }
    rows.push(claimOnly);
    // Finished builds of the last run, for the fencing check's fake-token tries.
    const done = await admin.execute({
      sql: "SELECT id, attempt, app, commit_sha FROM builds WHERE status = 'SUCCEEDED' LIMIT ?",
      args: [opts.stale],
    });
    const succeeded = done.rows.map(
      (r): ApiClaim => ({
        id: Number(r.id),
        attempt: Number(r.attempt),
        token: "",
        app: String(r.app),
        commitSha: String(r.commit_sha),
      }),
    );
    const main = table(HEADERS, rows);
    return [main, await fencingTable(stack, admin, { succeeded, count: opts.stale })];
  } finally {
    admin.close();
  }
}

const HEADERS = [
  "workers",
  "loop",
  "claimed / seeded",
  "claims/s",
  "claim p50 ms",
  "claim p99 ms",
  "complete p50 ms",
  "dup",
  "lost",
  "errors",
  `target ≥${TARGET_CLAIMS_PER_S}/s, p99 <${TARGET_P99_MS} ms`,
  "wrangler+workerd CPU",
  "libsql CPU",
  "bench CPU",
];

/** One run on a fresh queue; a row of the table. */
async function run(
  stack: Stack,
  admin: Client,
  opts: ApiBenchOptions,
  mode: { workers: number; claimOnly: boolean },
): Promise<string[]> {
  await seedQueue(admin, { queued: opts.apiBuilds });
  const meter = cpuMeter([
    { pid: stack.pids.wrangler, tree: true },
    { pid: stack.pids.libsql },
    { pid: Deno.pid },
  ]);
  const workers = Array.from({ length: mode.workers }, (_, i): QueueWorker<ApiClaim> => {
    const w = apiWorker(stack, `bench-${i}`);
    return mode.claimOnly ? { claim: w.claim, complete: () => Promise.resolve(true) } : w;
  });
  const record = await drive(workers, opts.apiSeconds);
  const [workerd, libsql, bench] = meter.read();
  // Taken by the database but handed to no worker. With the queue drained this is also
  // seeded − claimed; a run stopped by --api-seconds leaves the rest QUEUED, not lost.
  const lost = (await countTaken(admin)) - record.distinctBuilds;
  const p99 = quantile(record.claimMs, 0.99);
  const met = record.claimsPerSecond >= TARGET_CLAIMS_PER_S && p99 < TARGET_P99_MS;
  return [
    String(mode.workers),
    mode.claimOnly ? "claim only" : "claim → complete",
    `${fmt(record.distinctBuilds)} / ${fmt(opts.apiBuilds)}`,
    fmt(record.claimsPerSecond),
    ms(quantile(record.claimMs, 0.5)),
    ms(p99),
    mode.claimOnly ? "—" : ms(quantile(record.completeMs, 0.5)),
    String(record.duplicateBuilds),
    String(lost),
    record.errorSummary(),
    met ? "met" : "MISSED",
    pct(workerd),
    pct(libsql),
    pct(bench),
  ];
}
