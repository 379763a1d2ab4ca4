/** Structured logs: one JSON object per line, `event` named `noun:verb`. */

import {
  type EventLogger,
  jsonLogger as jsonLoggerOf,
  silentLogger as silentLoggerOf,
} from "../protocol/json-log.ts";

export { errorText, type Level } from "../protocol/json-log.ts";

/** What the build worker reports, and the fields each event carries (beyond ts/level/event). */
export interface WorkerEventMap {
  "worker:started": { worker_id: string; url: string; slots: number; workspace: string };
  "worker:stopping": { signal: string; grace_ms: number; running: number };
  "worker:grace-expired": { running: number };
  "worker:stopped": Record<string, never>;
  "config:invalid": { problems: string[] };
  "claim:failed": { slot: number; error: string; retry_in_ms: number };
  "build:claimed": {
    build_id: number;
    attempt: number;
    app: string;
    commit_sha: string;
    slot: number;
    timeout_ms: number;
  };
  "build:checked-out": { build_id: number; commit_sha: string; dir: string; ms: number };
  "build:command-started": { build_id: number; pid: number };
  "build:command-exited": {
    build_id: number;
    code: number;
    signal: string | null;
    ms: number;
  };
  "build:chunked": { build_id: number; size: number; chunks: number; sha256: string; ms: number };
  "chunk:uploaded": {
    build_id: number;
    digest: string;
    size: number;
    stored: boolean;
    ms: number;
  };
  "build:uploaded": {
    build_id: number;
    chunks_total: number;
    chunks_uploaded: number;
    bytes_total: number;
    bytes_uploaded: number;
    ms: number;
  };
  "build:completed": { build_id: number; attempt: number; size: number; ms: number };
  "build:failed": { build_id: number; attempt: number; reason: string; message: string };
  "build:abandoned": { build_id: number; attempt: number; code: string; message: string };
  "build:handed-back": { build_id: number; attempt: number; message: string };
  "build:report-failed": { build_id: number; error: string };
  "heartbeat:failed": { build_id: number; error: string };
  "logs:dropped": { build_id: number; seq: number; lines: number; error: string };
  "api:retry": { what: string; attempt: number; delay_ms: number; error: string };
  "workspace:cleanup-failed": { path: string; error: string };
}

export type WorkerEvent = keyof WorkerEventMap;

export type Logger = EventLogger<WorkerEventMap>;

/** A logger writing JSON lines through `write` (stdout in main.ts). Never throws. */
export const jsonLogger = (write: (line: string) => void, now?: () => Date): Logger =>
  jsonLoggerOf<WorkerEventMap>(write, now);

/** A logger that drops everything (tests). */
export const silentLogger: Logger = silentLoggerOf<WorkerEventMap>();
