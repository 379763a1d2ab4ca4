// A throwaway PostgreSQL cluster for the peer table: Debian's server binaries (installed with
// apt-get when missing), initdb on a temp directory, one postmaster on a free loopback port,
// stopped (SIGINT: "fast" shutdown) and deleted with the bench's other processes.

import { freePort, type Processes } from "./processes.ts";

const DEBIAN_PG = "/usr/lib/postgresql";

async function findBinDir(): Promise<string | undefined> {
  const versions: number[] = [];
  try {
    for await (const e of Deno.readDir(DEBIAN_PG)) if (/^\d+$/.test(e.name)) versions.push(+e.name);
  } catch {
    return undefined;
  }
  for (const v of versions.sort((a, b) => b - a)) {
    const bin = `${DEBIAN_PG}/${v}/bin`;
    if (
      await Deno.stat(`${bin}/postgres`).then(
        () => true,
        () => false,
      )
    )
      return bin;
  }
  return undefined;
}

async function run(cmd: string, args: string[], opts: { uid?: number; gid?: number } = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    env: { DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
    ...opts,
  }).output();
  if (out.code !== 0) {
    const err = new TextDecoder().decode(out.stderr).slice(-2000);
    throw new Error(`${cmd} ${args.join(" ")} failed (code ${out.code}):\n${err}`);
  }
}

/** uid and gid of `name` from /etc/passwd. */
async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  for (const line of (await Deno.readTextFile("/etc/passwd")).split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`no user ${name} in /etc/passwd: PostgreSQL cannot run as root without one`);
}

/** Starts a fresh cluster; returns its connection string. Stopped by `procs.stopAll()`. */
export async function startPostgres(procs: Processes): Promise<string> {
  let bin = await findBinDir();
  if (bin === undefined) {
    if (Deno.uid() !== 0) {
      throw new Error("PostgreSQL is not installed: run `apt-get install -y postgresql` as root");
    }
    console.error("bench/queue: installing PostgreSQL (apt-get install -y postgresql) …");
    await run("apt-get", ["install", "-y", "--no-install-recommends", "postgresql"]);
    bin = await findBinDir();
    if (bin === undefined)
      throw new Error(`apt-get installed PostgreSQL, but not under ${DEBIAN_PG}`);
  }
  // PostgreSQL refuses to run as root; as root we run it as the postgres user, in a directory
  // it owns (the bench's own temp dir is root's and mode 0700).
  const user = Deno.uid() === 0 ? await userIds("postgres") : undefined;
  const dir = await Deno.makeTempDir({ prefix: "bench-queue-pg-" });
  procs.defer(() => Deno.remove(dir, { recursive: true }));
  if (user) await Deno.chown(dir, user.uid, user.gid);
  const data = `${dir}/data`;
  await run(
    `${bin}/initdb`,
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
    {
      ...user,
    },
  );
  const port = freePort();
  await procs.start("postgres", `${bin}/postgres`, {
    args: [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      // No fsync wait per commit, as dev/libsql (WAL, synchronous=NORMAL): both may lose the
      // last commits on power loss, neither corrupts.
      "-c",
      "synchronous_commit=off",
      "-c",
      "max_connections=300",
    ],
    ...(user ?? {}),
    ready: /ready to accept connections/,
    stopSignal: "SIGINT",
  });
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}
