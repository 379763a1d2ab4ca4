import { and, asc, eq, gt, or } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { buildLogs } from "../db/schema.ts";

export interface LogCursor {
  attempt: number;
  seq: number;
}

export interface LogLine {
  attempt: number;
  seq: number;
  ts: string;
  line: string;
}

export function parseCursor(raw: string | undefined): LogCursor | undefined {
  if (!raw) return undefined;
  const m = /^(\d{1,6}):(\d{1,12})$/.exec(raw);
  return m ? { attempt: Number(m[1]), seq: Number(m[2]) } : undefined;
}

export const formatCursor = (c: LogCursor) => `${c.attempt}:${c.seq}`;

/** Log chunks after `after`, in (attempt, seq) order, flattened to lines. */
export async function readLogs(
  db: Db,
  id: number,
  after: LogCursor | undefined,
  limitChunks = 500,
): Promise<{ lines: LogLine[]; cursor: LogCursor | undefined }> {
  const rows = await db
    .select()
    .from(buildLogs)
    .where(
      and(
        eq(buildLogs.buildId, id),
        after
          ? or(
              gt(buildLogs.attempt, after.attempt),
              and(eq(buildLogs.attempt, after.attempt), gt(buildLogs.seq, after.seq)),
            )
          : undefined,
      ),
    )
    .orderBy(asc(buildLogs.attempt), asc(buildLogs.seq))
    .limit(limitChunks);
  const lines: LogLine[] = [];
  for (const r of rows) {
    const ts = new Date(r.ts).toISOString();
    for (const line of r.lines) lines.push({ attempt: r.attempt, seq: r.seq, ts, line });
  }
  const last = rows.at(-1);
  return { lines, cursor: last ? { attempt: last.attempt, seq: last.seq } : after };
}
