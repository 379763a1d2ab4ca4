// Command-line configuration of the local libSQL server: every field typed once with its
// default, and all problems reported together.

import { type FlagSpec, readFlags } from "../../protocol/flags.ts";

export interface LibsqlServerConfig {
  /** TCP port to listen on; 0 picks a free one. `--port`, default 8080. */
  readonly port: number;
  /** Interface to bind. `--host`, default 127.0.0.1 (local only). */
  readonly host: string;
  /** Database file; parent directories are created. `--file`, default .data/control.db. */
  readonly file: string;
  /** A stream with no request for this long is closed. `--idle-stream-timeout-ms`, default 10000. */
  readonly idleStreamTimeoutMs: number;
  /** How long a statement waits for a lock before SQLITE_BUSY. `--busy-timeout-ms`, default 5000. */
  readonly busyTimeoutMs: number;
}

export const defaultConfig: LibsqlServerConfig = {
  port: 8080,
  host: "127.0.0.1",
  file: ".data/control.db",
  idleStreamTimeoutMs: 10_000,
  busyTimeoutMs: 5_000,
};

export const USAGE = `deno task libsql [options]

  --port N                    TCP port, 0 for any free one (default 8080)
  --host ADDR                 interface to bind (default 127.0.0.1)
  --file PATH                 database file (default .data/control.db)
  --idle-stream-timeout-ms N  close a stream idle this long (default 10000)
  --busy-timeout-ms N         how long a statement waits for a lock (default 5000)
  --help`;

const OPTIONS = {
  port: { type: "string" },
  host: { type: "string" },
  file: { type: "string" },
  "idle-stream-timeout-ms": { type: "string" },
  "busy-timeout-ms": { type: "string" },
  help: { type: "boolean" },
} as const satisfies FlagSpec;
type Flag = Exclude<keyof typeof OPTIONS, "help">;

export type ConfigResult =
  | { readonly ok: true; readonly config: LibsqlServerConfig }
  | { readonly ok: false; readonly problems: string[] }
  | { readonly ok: "help" };

/** Parses `--flag value` and `--flag=value` arguments. */
export function parseConfig(args: readonly string[]): ConfigResult {
  const flags = readFlags(args, OPTIONS);
  if (flags.values.help) return { ok: "help" };
  const problems = flags.problems;
  const values = new Map(
    Object.entries(flags.values).filter((e): e is [Flag, string] => typeof e[1] === "string"),
  );

  const integer = (flag: Flag, fallback: number, min: number, max: number): number => {
    const text = values.get(flag);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^[0-9]+$/.test(text) || value < min || value > max) {
      problems.push(
        `--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`,
      );
      return fallback;
    }
    return value;
  };
  const text = (flag: Flag, fallback: string): string => {
    const value = values.get(flag);
    if (value === "") problems.push(`--${flag} must not be empty`);
    return value || fallback;
  };

  const config: LibsqlServerConfig = {
    port: integer("port", defaultConfig.port, 0, 65_535),
    host: text("host", defaultConfig.host),
    file: text("file", defaultConfig.file),
    idleStreamTimeoutMs: integer(
      "idle-stream-timeout-ms",
      defaultConfig.idleStreamTimeoutMs,
      1,
      3_600_000,
    ),
    busyTimeoutMs: integer("busy-timeout-ms", defaultConfig.busyTimeoutMs, 0, 600_000),
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config };
}
