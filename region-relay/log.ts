/** Structured logs: one JSON object per line, `event` named `noun:verb`. */

import {
  type EventLogger,
  jsonLogger as jsonLoggerOf,
  silentLogger as silentLoggerOf,
} from "../protocol/json-log.ts";

export { errorText, type Level } from "../protocol/json-log.ts";

/** What the relay reports, and the fields each event carries (beyond ts/level/event). */
export interface RelayEventMap {
  "relay:started": {
    relay_id: string;
    region: string;
    port: number;
    url: string;
    cache_dir: string;
    cache_max_bytes: number;
  };
  "relay:stopping": { signal: string };
  "relay:stopped": Record<string, never>;
  "config:invalid": { problems: string[] };
  "key:fetched": { warning: string };
  "upstream:connected": { url: string };
  "upstream:disconnected": { code: number; reason: string; retry_in_ms: number };
  "upstream:error": { what: string; error: string; retry_in_ms: number };
  "upstream:message-invalid": { problem: string };
  "machines:moved": { forgotten: number };
  "goals:updated": { version: number; apps: number; source: "push" | "poll" | "refresh" | "disk" };
  "chunk:fetched": { digest: string; size: number; ms: number };
  "chunk:fetch-failed": { digest: string; error: string };
  "chunk:evicted": { digest: string; size: number };
  "cache:loaded": { entries: number; bytes: number; dropped: number };
  "manifest:fetched": { build_id: number; ms: number };
  "manifest:refused": { build_id: number; reason: string };
  "agent:connected": { machine_id: string; remote: string };
  "agent:disconnected": { machine_id: string | null; code: number };
  "agent:refused": { reason: string; remote: string };
  "agent:message-invalid": { machine_id: string | null; problems: readonly string[] };
  "agent:message-unknown": { machine_id: string | null; type: string };
  "agent:status": {
    machine_id: string;
    app: string;
    state: string;
    build_id: number | null;
    detail: string | null;
  };
  "token:checked": { valid: boolean; cached: boolean };
  "token:check-failed": { error: string };
  "request:failed": { method: string; path: string; error: string };
}

export type RelayEvent = keyof RelayEventMap;

export type Logger = EventLogger<RelayEventMap>;

/** A logger writing JSON lines through `write` (stdout in main.ts). Never throws. */
export const jsonLogger = (write: (line: string) => void, now?: () => Date): Logger =>
  jsonLoggerOf<RelayEventMap>(write, now);

/** A logger that drops everything (tests). */
export const silentLogger: Logger = silentLoggerOf<RelayEventMap>();
