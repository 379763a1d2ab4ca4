import { sql } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { builds, counters, nowMs } from "../db/schema.ts";

/** Prometheus text: queue depth and age from the table, event counts from `counters`. */
export function registerMetrics(app: App): void {
  app.get("/metrics", async (c) => {
    const db = c.get("db");
    const [byStatus, oldest, counts] = await db.batch([
      db.all<{ status: string; n: number }>(
        sql`SELECT status, count(*) AS n FROM ${builds} GROUP BY status`,
      ),
      db.all<{ age_ms: number | null }>(
        sql`SELECT ${nowMs} - min(created_at) AS age_ms FROM ${builds} WHERE status = 'QUEUED'`,
      ),
      db.all<{ name: string; value: number }>(sql`SELECT name, value FROM ${counters}`),
    ]);
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
    };
    const statuses = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"];
    metric(
      "fleetship_builds",
      "gauge",
      "Builds by status.",
      statuses.map((s) => [
        `{status="${s}"}`,
        Number(byStatus.find((r) => r.status === s)?.n ?? 0),
      ]),
    );
    metric("fleetship_queue_depth", "gauge", "Builds waiting to be claimed.", [
      ["", Number(byStatus.find((r) => r.status === "QUEUED")?.n ?? 0)],
    ]);
    metric("fleetship_queue_oldest_age_seconds", "gauge", "Age of the oldest queued build.", [
      ["", Number(oldest[0]?.age_ms ?? 0) / 1000],
    ]);
    const count = (name: string) => Number(counts.find((r) => r.name === name)?.value ?? 0);
    for (const [name, help] of [
      ["claims", "Builds handed to workers."],
      ["completions", "Builds completed by workers."],
      ["worker_failures", "Attempts ended by a worker's fail call."],
      ["reaps", "Attempts requeued after their worker stopped heartbeating."],
      ["lost", "Builds failed as lost after their last attempt."],
      ["timeouts", "Builds failed for running past their timeout."],
    ] as const) {
      metric(`fleetship_queue_${name}_total`, "counter", help, [["", count(name)]]);
    }
    return c.text(`${lines.join("\n")}\n`, 200, { "Content-Type": "text/plain; version=0.0.4" });
  });
}
