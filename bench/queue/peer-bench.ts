// Table 3: a peer, graphile-worker 0.18 on PostgreSQL, at the same concurrency, beside our
// SQL-layer figures from table 2 of the same run. Two ways to drive it:
// - its runner (`run()` with a no-op task): its own claim path (getJobs.ts, completeJobs.ts)
//   and scheduling, measured as jobs/s from run() to the last job:complete;
// - its claim and complete statements, copied from dist/sql/getJobs.js (named-queue strategy
//   2, batch size 1, the default) and completeJobs.js, run by N workers on one connection
//   each: the same loop as table 2, so the two are comparable statement for statement.

import { Logger, makeWorkerUtils, run } from "graphile-worker";
import pg from "pg";
import { drive, type QueueWorker } from "./drive.ts";
import { startPostgres } from "./postgres.ts";
import { cpuMeter, type Processes } from "./processes.ts";
import { fmt, ms, type OursFigure, pct, quantile, RunRecord, table } from "./stats.ts";

export interface PeerBenchOptions {
  readonly workers: readonly number[];
  readonly jobs: number;
  readonly seconds: number;
  readonly ours: readonly OursFigure[];
}

const TARGET_CYCLES_PER_S = 5_000;
// The runner is stopped here even if jobs are left (then they show as neither done nor lost).
const RUNNER_CAP_MS = 60_000;
const SCHEMA = "graphile_worker";
const quiet = new Logger(() => () => {});

const GET_JOB = `with j as (
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
    from ${SCHEMA}._private_jobs as jobs
    where jobs.is_available = true
    and run_at <= now()
    and task_id = any($2::int[])
    and (
      jobs.job_queue_id is null
      or
      jobs.job_queue_id in (
        select id
        from ${SCHEMA}._private_job_queues as job_queues
        where job_queues.is_available = true
        for update
        skip locked
      )
    )
    order by priority asc, run_at asc
    limit 1
    for update
    skip locked
),
q as (
  update ${SCHEMA}._private_job_queues as job_queues
    set
      locked_by = $1::text,
      locked_at = now()
    from j
    where job_queues.id = j.job_queue_id
)
  update ${SCHEMA}._private_jobs as jobs
    set
      attempts = jobs.attempts + 1,
      locked_by = $1::text,
      locked_at = now()
    from j
    where jobs.id = j.id
    returning *`;
const COMPLETE_JOB = `delete from ${SCHEMA}._private_jobs as jobs where id = $1::bigint`;

export async function peerBench(procs: Processes, opts: PeerBenchOptions): Promise<string[]> {
  const connectionString = await startPostgres(procs);
  const postgresPid = procs.pidOf("postgres")!;
  const utils = await makeWorkerUtils({ connectionString, logger: quiet });
  const rows: string[][] = [];
  try {
    await utils.migrate();
    const sql = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
      utils.withPgClient((c) => c.query<R>(text, values));
    const seed = async () => {
      await sql(`delete from ${SCHEMA}._private_jobs`);
      await sql(`select ${SCHEMA}.add_job('noop', '{}'::json) from generate_series(1, $1)`, [
        opts.jobs,
      ]);
      // Every run leaves its jobs as dead rows, which later runs' claims scan past until
      // autovacuum comes: measured without this, 5,177 instead of 9,536 cycles/s (SQL, 10
      // workers). Each run starts from a vacuumed table, as a steady autovacuum would keep it.
      await sql(`vacuum analyze ${SCHEMA}._private_jobs`);
    };
    // Jobs no worker has touched: still in the table and never locked.
    const untouched = async () => {
      const text = `select count(*) as n from ${SCHEMA}._private_jobs where locked_at is null`;
      return Number((await sql<{ n: string }>(text)).rows[0]?.n);
    };
    type Go = (readCpu: () => void) => Promise<RunRecord>;
    const measured = async (label: string, workers: number, go: Go) => {
      await seed();
      const meter = cpuMeter([{ pid: postgresPid, tree: true }, { pid: Deno.pid }]);
      let cpu: number[] = [];
      const record = await go(() => (cpu = meter.read()));
      const [pgCpu, bench] = cpu;
      // Taken (deleted or locked) but handed to no worker, as table 2 counts it.
      const lost = opts.jobs - (await untouched()) - record.distinctBuilds;
      rows.push([
        label,
        String(workers),
        fmt(record.cyclesPerSecond),
        ms(quantile(record.claimMs, 0.5)),
        ms(quantile(record.claimMs, 0.99)),
        String(record.duplicateBuilds),
        String(lost),
        "—",
        pct(pgCpu),
        pct(bench),
      ]);
    };
    for (const workers of opts.workers) {
      await measured("graphile-worker runner, no-op task", workers, (readCpu) =>
        runnerRun(connectionString, { workers, jobs: opts.jobs, readCpu }),
      );
    }
    const [taskRow] = (
      await sql<{ id: number }>(`select id from ${SCHEMA}._private_tasks where identifier = 'noop'`)
    ).rows;
    if (taskRow === undefined) throw new Error("graphile-worker registered no 'noop' task");
    for (const workers of opts.workers) {
      await measured("graphile-worker SQL (getJobs + completeJobs)", workers, (readCpu) =>
        statementRun(connectionString, {
          workers,
          taskId: taskRow.id,
          seconds: opts.seconds,
          readCpu,
        }),
      );
    }
  } finally {
    await utils.release();
  }
  for (const o of opts.ours) {
    rows.push([
      `ours, ${o.via} (table 2)`,
      String(o.workers),
      fmt(o.cyclesPerSecond),
      ms(o.p50),
      ms(o.p99),
      "",
      "",
      o.cyclesPerSecond >= TARGET_CYCLES_PER_S ? "met" : "MISSED",
      "",
      "",
    ]);
  }
  return [
    table(
      [
        "queue",
        "workers",
        "cycles/s",
        "claim p50 ms",
        "claim p99 ms",
        "dup",
        "lost",
        `ours ≥${fmt(TARGET_CYCLES_PER_S)}/s`,
        "postgres CPU",
        "bench CPU",
      ],
      rows,
    ),
  ];
}

/** graphile-worker's own runner until every job has completed; jobs/s from run() on. */
async function runnerRun(
  connectionString: string,
  { workers, jobs, readCpu }: { workers: number; jobs: number; readCpu: () => void },
) {
  const record = new RunRecord();
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const runner = await run({
    connectionString,
    concurrency: workers,
    maxPoolSize: workers + 2,
    pollInterval: 1000,
    noHandleSignals: true,
    logger: quiet,
    taskList: { noop: () => Promise.resolve() },
  });
  // Claim latency is not observable from outside the runner: hand-outs are counted, and the
  // latency samples dropped below.
  runner.events.on("job:start", ({ job }) => record.claimed(Number(job.id), job.attempts, 0));
  runner.events.on("job:complete", () => {
    if (++record.completes === jobs) allDone();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([done, new Promise((r) => (timer = setTimeout(r, RUNNER_CAP_MS)))]);
  } finally {
    clearTimeout(timer);
    record.endedAt = performance.now();
    readCpu();
    await runner.stop();
  }
  record.claimMs.length = 0;
  return record;
}

/** N workers, one connection each, looping graphile-worker's claim and complete statements. */
async function statementRun(
  connectionString: string,
  opts: { workers: number; taskId: number; seconds: number; readCpu: () => void },
) {
  const { taskId } = opts;
  const clients = Array.from({ length: opts.workers }, () => new pg.Client({ connectionString }));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    const workers = clients.map(
      (c, i): QueueWorker<{ id: number; attempt: number }> => ({
        async claim() {
          const r = await c.query<{ id: string; attempts: number }>({
            name: "get_job",
            text: GET_JOB,
            values: [`bench-${i}`, [taskId]],
          });
          const row = r.rows[0];
          return row === undefined ? undefined : { id: Number(row.id), attempt: row.attempts };
        },
        async complete(job) {
          const r = await c.query({ name: "complete_job", text: COMPLETE_JOB, values: [job.id] });
          return r.rowCount === 1;
        },
      }),
    );
    const record = await drive(workers, opts.seconds);
    opts.readCpu();
    return record;
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}
