import { and, desc, eq, sql } from "drizzle-orm";
import type { Actor } from "../audit.ts";
import { auditInsert } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { applications, builds, nowMs } from "../db/schema.ts";
import { notFound } from "../errors.ts";
import type { BuildRow } from "./build-view.ts";

export interface CreateBuild {
  app: string;
  commitSha: string;
  force: boolean;
  maxAttempts: number;
  defaultTimeoutMs: number;
}

/**
 * Queues a build, or returns the existing one for (app, commit) unless `force`. The
 * insert-if-absent is one statement, so two racing requests for one commit make one build.
 */
export async function createBuild(
  db: Db,
  actor: Actor,
  req: CreateBuild,
): Promise<{ build: BuildRow; created: boolean }> {
  const app = await db.query.applications.findFirst({ where: eq(applications.name, req.app) });
  if (!app) throw notFound("application", req.app);
  const timeoutMs = app.buildTimeoutMs ?? req.defaultTimeoutMs;
  const absent = req.force
    ? sql``
    : sql`WHERE NOT EXISTS (SELECT 1 FROM ${builds} WHERE app = ${req.app} AND commit_sha = ${req.commitSha})`;
  const [inserted] = await db.batch([
    db.all<{ id: number }>(
      sql`INSERT INTO ${builds} (app, commit_sha, status, max_attempts, timeout_ms, created_by, created_at, run_after)
          SELECT ${req.app}, ${req.commitSha}, 'QUEUED', ${req.maxAttempts}, ${timeoutMs}, ${actor.actor}, ${nowMs}, 0
          ${absent} RETURNING id`,
    ),
    auditInsert(db, actor, {
      action: "build.create",
      target: sql`'build:' || last_insert_rowid()`,
      details: { app: req.app, commit_sha: req.commitSha, force: req.force },
      onlyIfChanged: true,
    }),
  ]);
  const id = inserted[0]?.id;
  const build = await db.query.builds.findFirst({
    where:
      id !== undefined
        ? eq(builds.id, id)
        : and(eq(builds.app, req.app), eq(builds.commitSha, req.commitSha)),
    orderBy: desc(builds.id),
  });
  if (!build) throw new Error(`build for ${req.app}@${req.commitSha} vanished after insert`);
  return { build, created: id !== undefined };
}
