/** Structured logs: one JSON object per line, `event` named `noun:verb`. */

import {
  type EventLogger,
  jsonLogger as jsonLoggerOf,
  silentLogger as silentLoggerOf,
} from "../protocol/json-log.ts";

export { errorText, type Level } from "../protocol/json-log.ts";

/** What the agent reports, and the fields each event carries (beyond ts/level/event). */
export interface AgentEventMap {
  "agent:started": { machine_id: string; region: string; relays: string[]; state_dir: string };
  "agent:stopping": { signal: string };
  "agent:stopped": Record<string, never>;
  "config:invalid": { problems: string[] };
  "agent:enrolled": { region: string; machine_id: string };
  "enroll:failed": { error: string; retry_in_ms: number };
  "key:fetched": { warning: string };
  "relay:connected": { relay: string; relay_id: string };
  "peer:banned": { peer: string; digest: string; reason: string };
  "peer:timeout": { peer: string; digest: string; ms: number; in_a_row: number };
  "peer:dropped": { peer: string; reason: string; retry_in_ms: number };
  "mesh:listening": { port: number; peer_url: string };
  "mesh:finished": {
    peer_pieces: number;
    relay_pieces: number;
    banned: number;
    relay_busy: number;
  };
  "relay:disconnected": { relay: string; reason: string; retry_in_ms: number };
  "relay:message-invalid": { relay: string; problems: readonly string[] };
  "relay:message-unknown": { relay: string; type: string };
  "goal:refused": { app: string | null; reason: string; message: string };
  "goal:accepted": { app: string; generation: number; build_id: number };
  "goal:skipped": { app: string; generation: number; reason: string };
  "manifest:refused": { app: string; build_id: number; reason: string };
  "download:started": {
    app: string;
    build_id: number;
    chunks_total: number;
    chunks_done: number;
    bytes_total: number;
  };
  "chunk:reused": { app: string; build_id: number; digest: string; size: number };
  "chunk:fetched": { app: string; build_id: number; digest: string; size: number; source: string };
  "chunk:refused": {
    app: string;
    build_id: number;
    digest: string;
    source: string;
    reason: string;
  };
  "download:finished": {
    app: string;
    build_id: number;
    bytes_fetched: number;
    bytes_reused: number;
    ms: number;
  };
  "download:hash-mismatch": { app: string; build_id: number; bad_chunks: number };
  "release:installed": { app: string; build_id: number; path: string };
  "release:switched": { app: string; build_id: number; previous_build_id: number | null };
  "release:pruned": { app: string; build_id: number };
  "app:started": { app: string; build_id: number; pid: number; port: number };
  "app:exited": { app: string; build_id: number; code: number | null; signal: string | null };
  "app:restarting": { app: string; build_id: number; in_ms: number };
  "app:stopped": { app: string; build_id: number };
  "app:orphan-killed": { app: string; pid: number };
  "app:removed": { app: string; generation: number; reason: "undeployed" | "not-placed" };
  "app:not-started": { app: string; build_id: number; reason: string };
  /** A release that passed its health gate lost its process: the machine is failed. */
  "app:crashed": { app: string; build_id: number; restarts: number; detail: string };
  /** After a crash, a process stayed healthy through the settle period again. */
  "app:recovered": { app: string; build_id: number; restarts: number };
  /** No /proc here: a health answer on the port cannot be tied to the app's process. */
  "health:ownership-unproven": { app: string; port: number };
  "health:passed": { app: string; build_id: number; ms: number };
  "health:failed": { app: string; build_id: number; reason: string };
  "deploy:healthy": { app: string; build_id: number; generation: number; ms: number };
  "deploy:failed": { app: string; build_id: number; generation: number; reason: string };
  "deploy:rolled-back": { app: string; from_build_id: number; to_build_id: number | null };
  "deploy:superseded": { app: string; build_id: number; by_generation: number };
  "deploy:error": { app: string; build_id: number; error: string; retry_in_ms: number };
}

export type AgentEvent = keyof AgentEventMap;

export type Logger = EventLogger<AgentEventMap>;

/** A logger writing JSON lines through `write` (stdout in main.ts). Never throws. */
export const jsonLogger = (write: (line: string) => void, now?: () => Date): Logger =>
  jsonLoggerOf<AgentEventMap>(write, now);

/** A logger that drops everything (tests). */
export const silentLogger: Logger = silentLoggerOf<AgentEventMap>();
