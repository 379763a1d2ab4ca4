// Structured logs: one JSON object per line, with a typed event map so every event name
// (`noun:verb`) and its fields are declared in one place.

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogEventMap {
  "libsql:listening": { url: string; file: string };
  "libsql:config-invalid": { problems: string[] };
  "libsql:start-failed": { error: string };
  "libsql:stopping": { signal: string };
  "libsql:stopped": { streamsClosed: number };
  "stream:expired": { streamId: number; hadTransaction: boolean };
  "request:rejected": {
    method: string;
    path: string;
    status: number;
    code: string;
    message: string;
  };
  "request:failed": { method: string; path: string; error: string };
}

export type Logger = <E extends keyof LogEventMap>(
  level: LogLevel,
  event: E,
  fields: LogEventMap[E],
) => void;

export function jsonLogger(writeLine: (line: string) => void, now = () => new Date()): Logger {
  return (level, event, fields) => {
    try {
      writeLine(JSON.stringify({ ts: now().toISOString(), level, event, ...fields }));
    } catch {
      // A log sink that fails (closed stdout) must not take the request down with it.
    }
  };
}
