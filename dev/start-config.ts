/**
 * `npm start`'s flags and environment (a flag wins), typed once with their defaults; every
 * problem is reported together, each naming its flag.
 */
import { ConfigError, type FlagSpec, readFlags } from "../protocol/flags.ts";

export interface StartConfig {
  /** The control plane's port. --port, FLEETSHIP_PORT, default 8787. */
  port: number;
  /** The local libSQL server's port. --libsql-port, FLEETSHIP_LIBSQL_PORT, default 8080. */
  libsqlPort: number;
  /** Where everything is kept. --data, FLEETSHIP_DATA, default <checkout>/.data. */
  data: string;
  /** Only the database and the control plane (what the tests start). --bare. */
  bare: boolean;
  /** The six relays listen from here. --relay-port-base, FLEETSHIP_RELAY_PORT_BASE, default 7101. */
  relayPortBase: number;
  /** Agents' apps listen from here, 10 apart. --app-port-base, FLEETSHIP_APP_PORT_BASE, default 9101. */
  appPortBase: number;
}

export const USAGE = `npm start -- [options]

  --port N              control plane (FLEETSHIP_PORT; default 8787)
  --libsql-port N       local libSQL server (FLEETSHIP_LIBSQL_PORT; default 8080)
  --data DIR            state of the local stack (FLEETSHIP_DATA; default .data)
  --relay-port-base N   first of the six relays' ports (FLEETSHIP_RELAY_PORT_BASE; default 7101)
  --app-port-base N     first agent's app port, the others 10 apart (FLEETSHIP_APP_PORT_BASE; default 9101)
  --bare                only the database and the control plane
  --help`;

const OPTIONS = {
  port: { type: "string" },
  "libsql-port": { type: "string" },
  data: { type: "string" },
  bare: { type: "boolean" },
  "relay-port-base": { type: "string" },
  "app-port-base": { type: "string" },
  help: { type: "boolean" },
} as const satisfies FlagSpec;

export function parseStartConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  root: string,
): StartConfig | "help" {
  const { values, problems } = readFlags(args, OPTIONS);
  if (values.help) return "help";
  const port = (flag: keyof typeof OPTIONS, envName: string, fallback: number, room = 0) => {
    const fromFlag = values[flag];
    const raw = typeof fromFlag === "string" ? fromFlag : env[envName] || undefined;
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n + room > 65535) {
      const from = typeof fromFlag === "string" ? `--${flag}` : envName;
      problems.push(`${from}: expected a port in [1, ${65535 - room}], got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };
  const data = values.data ?? (env.FLEETSHIP_DATA || `${root}.data`);
  if (data === "") problems.push("--data: must not be empty");
  const config: StartConfig = {
    port: port("port", "FLEETSHIP_PORT", 8787),
    libsqlPort: port("libsql-port", "FLEETSHIP_LIBSQL_PORT", 8080),
    data,
    bare: values.bare ?? false,
    relayPortBase: port("relay-port-base", "FLEETSHIP_RELAY_PORT_BASE", 7101, 5),
    appPortBase: port("app-port-base", "FLEETSHIP_APP_PORT_BASE", 9101, 90),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
