// The local libSQL server: Hrana over HTTP (JSON, versions 2 and 3) on a database file,
// standing in for Turso/sqld in development and tests. Composition root: reads the
// arguments, builds the parts and serves.
//
//   deno task libsql [--port 8080] [--host 127.0.0.1] [--file .data/control.db]
//                    [--idle-stream-timeout-ms 10000] [--busy-timeout-ms 5000]

import { dirname, resolve } from "node:path";
import { usageError } from "../../protocol/flags.ts";
import { parseConfig, USAGE } from "./config.ts";
import { libsqlOpener, prepareDatabaseFile } from "./connection.ts";
import { jsonLogger } from "./log.ts";
import { createHandler } from "./server.ts";
import { StreamRegistry } from "./streams.ts";

const SERVER_NAME = "fleetship-libsql-dev";
const SERVER_VERSION = "0.1.0";
// Each open stream holds a SQLite connection and file descriptors.
const MAX_STREAMS = 1_000;
// In-flight requests get this long to finish on shutdown; the test helper kills at 5 s.
const SHUTDOWN_GRACE_MS = 3_000;

const log = jsonLogger((line) => console.log(line));

function main(): void {
  const parsed = parseConfig(Deno.args);
  if (parsed.ok === "help") {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (!parsed.ok) {
    log("error", "libsql:config-invalid", { problems: parsed.problems });
    console.error(usageError("fleetship-libsql", parsed.problems, USAGE));
    Deno.exit(2);
  }
  const config = parsed.config;
  const file = resolve(config.file);
  Deno.mkdirSync(dirname(file), { recursive: true });
  const { sqliteVersion } = prepareDatabaseFile(file);

  const registry = new StreamRegistry({
    openConnection: libsqlOpener(file),
    idleTimeoutMs: config.idleStreamTimeoutMs,
    maxStreams: MAX_STREAMS,
    onExpired: (event) => log("info", "stream:expired", event),
  });
  const handler = createHandler({
    registry,
    log,
    busyTimeoutMs: config.busyTimeoutMs,
    info: { name: SERVER_NAME, version: SERVER_VERSION, sqliteVersion },
  });

  const server = Deno.serve(
    {
      hostname: config.host,
      port: config.port,
      // Supplying onListen also stops Deno from printing its own plain-text banner.
      onListen: ({ hostname, port }) => {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        log("info", "libsql:listening", { url: `http://${host}:${port}`, file });
      },
    },
    handler,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("info", "libsql:stopping", { signal });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      server.shutdown(),
      new Promise((done) => (timer = setTimeout(done, SHUTDOWN_GRACE_MS))),
    ]);
    clearTimeout(timer);
    const streamsClosed = registry.size;
    registry.closeAll();
    log("info", "libsql:stopped", { streamsClosed });
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }
}

try {
  main();
} catch (error) {
  // A taken port or an unreadable file: say so in the same structured form, then fail.
  log("error", "libsql:start-failed", {
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
  Deno.exit(1);
}
