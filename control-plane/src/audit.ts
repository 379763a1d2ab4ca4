import { type SQL, sql } from "drizzle-orm";
import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import type { Db } from "./db/client.ts";
import { auditLog, counters } from "./db/schema.ts";

export interface Actor {
  actor: string;
  role: string;
  requestId: string | null;
  ip: string | null;
}

export function actorOf(c: Context<AppEnv>): Actor {
  const p = c.get("principal");
  return {
    actor: p ? `${p.name} (${p.tokenId})` : "anonymous",
    role: p?.role ?? "none",
    requestId: c.get("requestId") ?? null,
    ip: c.req.header("CF-Connecting-IP") ?? c.req.header("X-Forwarded-For") ?? null,
  };
}

/**
 * An audit row, to run in the same batch as the change it records. `target` may be SQL (e.g.
 * the id the previous statement inserted); `onlyIfChanged` writes it only when the statement
 * before it in the batch changed a row (`changes()` is per connection; a batch runs on one).
 */
export function auditInsert(
  db: Db,
  actor: Actor,
  entry: {
    action: string;
    target: string | SQL | null;
    details?: unknown;
    onlyIfChanged?: boolean;
  },
) {
  const details = entry.details === undefined ? null : JSON.stringify(entry.details);
  const guard = entry.onlyIfChanged ? sql`WHERE changes() > 0` : sql``;
  return db.run(
    sql`INSERT INTO ${auditLog} (actor, role, action, target, details, request_id, ip)
        SELECT ${actor.actor}, ${actor.role}, ${entry.action}, ${entry.target}, ${details},
               ${actor.requestId}, ${actor.ip} ${guard}`,
  );
}

/**
 * Adds to a /metrics counter the rows the statement before it in the batch changed
 * (`changes()` is per connection, and a batch runs on one), so a no-op never counts.
 */
export function bumpByChanges(db: Db, name: string) {
  return db.run(
    sql`INSERT INTO ${counters} (name, value) SELECT ${name}, changes() WHERE changes() > 0
        ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`,
  );
}
