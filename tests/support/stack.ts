import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The real Deno binary, not the npm wrapper (which leaves Deno orphaned when signalled). */
export const DENO = join(ROOT, "node_modules/@deno/linux-x64-glibc/deno");

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface Stack {
  url: string;
  port: number;
  libsqlPort: number;
  libsqlUrl: string;
  dataDir: string;
  tokens: { admin: string; deployer: string; builder: string };
  publicKey: string;
  /** Output of the launcher so far, for failure messages. */
  output(): string;
  /** Stops it; the data directory it made is removed unless `keepData` (to start it again). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/**
 * Starts the local stack exactly as `npm start` does (dev/start.ts: libSQL server, migrations,
 * tokens, wrangler dev), on free ports and a temporary data directory, and waits for READY.
 */
export async function startStack(
  opts: { dataDir?: string; port?: number; libsqlPort?: number } = {},
): Promise<Stack> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "fleetship-stack-")));
  // Given ports and data directory restart the same stack (a control plane restarted mid-work).
  const port = opts.port ?? (await freePort());
  const libsqlPort = opts.libsqlPort ?? (await freePort());
  const child: ChildProcess = spawn(
    DENO,
    [
      "run",
      "--allow-all",
      "dev/start.ts",
      "--port",
      String(port),
      "--libsql-port",
      String(libsqlPort),
      "--data",
      dataDir,
      // The database and the control plane only: each test starts the other parts it needs.
      "--bare",
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const stop = async (how: { keepData?: boolean } = {}) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (!opts.dataDir && !how.keepData) await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 120_000;
  while (!/^READY /m.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`local stack did not become READY:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = `http://127.0.0.1:${port}`;
  const local = JSON.parse(await readFile(join(dataDir, "local.json"), "utf8"));
  const key = (await (await fetch(`${url}/v1/signing-key`)).json()) as { public_key: string };
  return {
    url,
    port,
    libsqlPort,
    libsqlUrl: `http://127.0.0.1:${libsqlPort}`,
    dataDir,
    tokens: local.tokens,
    publicKey: key.public_key,
    output: () => out,
    stop,
  };
}
