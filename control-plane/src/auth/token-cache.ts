/**
 * Verified token rows, kept per isolate for a few seconds so that a builder's claim or
 * heartbeat costs one database round trip (the queue statement), not two. What is kept is the
 * row as read; every request still checks the secret against its hash and the expiry against
 * the clock. Revocation: immediate in the isolate that revoked (the row is dropped), within
 * TOKEN_CACHE_MS everywhere else (each isolate re-reads a row once it is that old).
 */
import type { tokens } from "../db/schema.ts";

type TokenRow = typeof tokens.$inferSelect;

/** How long a verified row is trusted before it is read again. */
export const TOKEN_CACHE_MS = 5_000;
/** Rows kept at most (one per active token; the oldest goes first). */
const MAX_ROWS = 10_000;

const rows = new Map<string, { row: TokenRow; at: number }>();

/** The row of token `id` if it was read less than TOKEN_CACHE_MS ago. */
export function cachedToken(id: string, now = Date.now()): TokenRow | undefined {
  const hit = rows.get(id);
  if (!hit) return undefined;
  if (now - hit.at >= TOKEN_CACHE_MS) {
    rows.delete(id);
    return undefined;
  }
  return hit.row;
}

export function rememberToken(row: TokenRow, now = Date.now()): void {
  rows.delete(row.id);
  rows.set(row.id, { row, at: now });
  if (rows.size > MAX_ROWS) rows.delete(rows.keys().next().value as string);
}

/** Drops token `id` (revoked, or changed in any way that must show at once). */
export function forgetToken(id: string): void {
  rows.delete(id);
}
