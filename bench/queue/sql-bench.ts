// Table 2: the claim at the SQL layer, without the Worker in front. Each run seeds a fresh
// queue, drives N workers (one @libsql/client each, as N worker processes would have), and
// checks what the database says was taken against what the workers say they got.

import { createClient } from "@libsql/client";
import { migrateDatabase } from "../../dev/migrate.ts";
import {
  type Claimed,
  ours,
  oursApiBatch,
  type SqlClient,
  type Strategy,
  seedNoTransaction,
  seedTransaction,
} from "./claim-sql.ts";
import { drive, type QueueWorker } from "./drive.ts";
import { EmbeddedClient } from "./embedded.ts";
import { claimPlan, countTaken, INDEX_LAYOUTS, seedQueue, startLibsql } from "./libsql.ts";
import { cpuMeter, type Processes } from "./processes.ts";
import { fmt, ms, type OursFigure, pct, quantile, type RunRecord, table } from "./stats.ts";

export interface SqlBenchOptions {
  readonly dir: string;
  readonly workers: readonly number[];
  /** Builds per run on the small queue, over HTTP and embedded (which drains ~10x faster). */
  readonly queued: number;
  readonly embeddedQueued: number;
  readonly seconds: number;
  readonly bigQueued: number;
  readonly bigHistory: number;
  readonly bigWorkers: readonly number[];
}

/** Where the claims run: the local server over HTTP, or the engine in this process. */
interface Target {
  readonly via: "HTTP" | "embedded";
  open(): SqlClient;
  /** The engine is synchronous: more workers in one process would only take turns. */
  readonly oneWorker: boolean;
  /** The server process, whose CPU use tells what bounds a run. */
  readonly serverPid?: number;
}

interface Measured {
  readonly record: RunRecord;
  readonly lost: number;
  /** Share of one core used by the server and by this process (the workers) during the run. */
  readonly cpu: { readonly server: number | undefined; readonly bench: number };
}

/** One run: fresh queue, one client per worker, then the database's count against theirs. */
async function measure(
  target: Target,
  strategy: Strategy,
  opts: { workers: number; seconds: number; seed: () => Promise<void> },
): Promise<Measured> {
  await opts.seed();
  const clients = Array.from({ length: opts.workers }, () => target.open());
  try {
    const workers = clients.map(
      (client, i): QueueWorker<Claimed> => ({
        claim: () => strategy.claim(client, `bench-${i}`),
        complete: (c) => strategy.complete(client, c),
      }),
    );
    const server = target.serverPid;
    const meter = cpuMeter(
      server === undefined ? [{ pid: Deno.pid }] : [{ pid: Deno.pid }, { pid: server }],
    );
    const record = await drive(workers, opts.seconds);
    const [bench = 0, serverCpu] = meter.read();
    const admin = target.open();
    try {
      // Taken by the database but handed to no worker: a claim that committed and got lost.
      const lost = (await countTaken(admin)) - record.distinctBuilds;
      return { record, lost, cpu: { server: serverCpu, bench } };
    } finally {
      admin.close();
    }
  } finally {
    for (const c of clients) c.close();
  }
}

function row(via: string, strategy: Strategy, workers: number, m: Measured) {
  const r = m.record;
  return [
    strategy.name,
    via,
    String(workers),
    fmt(r.cyclesPerSecond),
    ms(quantile(r.claimMs, 0.5)),
    ms(quantile(r.claimMs, 0.99)),
    String(r.duplicateBuilds),
    String(m.lost),
    r.errorSummary(),
    fmt(r.claims),
    pct(m.cpu.server),
    pct(m.cpu.bench),
  ];
}

const HEADERS = [
  "claim",
  "via",
  "workers",
  "cycles/s",
  "claim p50 ms",
  "claim p99 ms",
  "dup",
  "lost",
  "errors (retried)",
  "claims",
  "server CPU",
  "bench CPU",
];

/** The small-queue strategy table and the large-queue index table, over HTTP and embedded. */
export async function sqlBench(
  procs: Processes,
  opts: SqlBenchOptions,
): Promise<{ tables: string[]; ours: OursFigure[] }> {
  const url = await startLibsql(procs, `${opts.dir}/sql-layer.db`);
  const embeddedFile = `${opts.dir}/embedded.db`;
  await migrateDatabase(`file:${embeddedFile}`);
  const targets: Target[] = [
    {
      via: "HTTP",
      open: () => createClient({ url }),
      oneWorker: false,
      ...(procs.pidOf("libsql") === undefined ? {} : { serverPid: procs.pidOf("libsql")! }),
    },
    { via: "embedded", open: () => new EmbeddedClient(embeddedFile), oneWorker: true },
  ];
  const rows: string[][] = [];
  const oursFigures: OursFigure[] = [];
  for (const target of targets) {
    const admin = target.open();
    try {
      const queued = target.oneWorker ? opts.embeddedQueued : opts.queued;
      const seed = () => seedQueue(admin, { queued });
      const strategies = target.oneWorker
        ? [ours, oursApiBatch, seedTransaction]
        : [ours, oursApiBatch, seedTransaction, seedNoTransaction];
      for (const strategy of strategies) {
        for (const workers of target.oneWorker ? [1] : opts.workers) {
          const m = await measure(target, strategy, { workers, seconds: opts.seconds, seed });
          rows.push(row(target.via, strategy, workers, m));
          if (strategy !== ours) continue;
          oursFigures.push({
            via: target.via,
            workers,
            cyclesPerSecond: m.record.cyclesPerSecond,
            p50: quantile(m.record.claimMs, 0.5),
            p99: quantile(m.record.claimMs, 0.99),
          });
        }
      }
    } finally {
      admin.close();
    }
  }
  return { tables: [table(HEADERS, rows), await bigQueueTable(targets, opts)], ours: oursFigures };
}

/**
 * A large table (finished history ahead of a long queue, as a long-lived deployment has)
 * under each index layout: what one claim costs when the index does or does not match.
 */
async function bigQueueTable(targets: readonly Target[], opts: SqlBenchOptions): Promise<string> {
  const rows: string[][] = [];
  const admins = targets.map((t) => t.open());
  try {
    for (const [i, layout] of INDEX_LAYOUTS.entries()) {
      for (const admin of admins) for (const ddl of layout.ddl) await admin.execute(ddl);
      for (const [t, target] of targets.entries()) {
        const admin = admins[t]!;
        // On its own connection: the libsql binding leaves an EXPLAIN's read snapshot open
        // (measured with 0.5.29), which would fail the next write on a long-lived one.
        const probe = target.open();
        const plan = await claimPlan(probe).finally(() => probe.close());
        const seed = () => seedQueue(admin, { queued: opts.bigQueued, history: opts.bigHistory });
        // The audit row names its target by lease token, which no index covers: shown once.
        for (const strategy of i === 0 ? [ours, oursApiBatch] : [ours]) {
          for (const workers of target.oneWorker ? [1] : opts.bigWorkers) {
            const { record, lost } = await measure(target, strategy, {
              workers,
              seconds: opts.seconds,
              seed,
            });
            rows.push([
              layout.name,
              strategy === ours ? "ours" : "ours + audit + counter",
              target.via,
              String(workers),
              fmt(record.cyclesPerSecond),
              ms(quantile(record.claimMs, 0.5)),
              ms(quantile(record.claimMs, 0.99)),
              String(record.duplicateBuilds),
              String(lost),
              plan,
            ]);
          }
        }
      }
    }
  } finally {
    for (const admin of admins) admin.close();
  }
  const size = `${fmt(opts.bigHistory)} finished + ${fmt(opts.bigQueued)} queued`;
  return table(
    [
      `index (${size})`,
      "claim",
      "via",
      "workers",
      "cycles/s",
      "p50 ms",
      "p99 ms",
      "dup",
      "lost",
      "plan",
    ],
    rows,
  );
}
