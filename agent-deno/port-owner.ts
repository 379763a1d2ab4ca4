/**
 * Who listens on an app's port (Linux, from /proc), so that the agent never counts another
 * process's answers as its app's health. A listening TCP socket is a line of /proc/net/tcp or
 * tcp6 (state 0A) with its inode; the process holding it has `socket:[<inode>]` among the
 * links in /proc/<pid>/fd. Deno reads /proc only with --allow-all, which the agent runs with.
 *
 * Without /proc (not Linux) nothing can be proven: `listeners()` says null, and the agent
 * falls back to the process being alive, with a warning (agent-deno/README.md).
 */

export interface TcpListener {
  port: number;
  /** The socket's inode (what /proc/<pid>/fd links name). */
  inode: number;
  /** The user the socket belongs to. */
  uid: number;
}

const LISTEN = "0A";

/** Listening sockets of a /proc/net/tcp or tcp6 table (its header line is skipped). */
export function parseTcpTable(text: string): TcpListener[] {
  const out: TcpListener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const port = Number.parseInt(f[1]!.split(":")[1] ?? "", 16);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (Number.isInteger(port) && Number.isInteger(inode) && inode > 0)
      out.push({ port, inode, uid });
  }
  return out;
}

/** Sockets listening on `port` (any address, IPv4 or IPv6), or null where /proc cannot tell. */
export async function listeners(port: number): Promise<TcpListener[] | null> {
  const tables = await Promise.all(
    ["/proc/net/tcp", "/proc/net/tcp6"].map((p) => Deno.readTextFile(p).catch(() => null)),
  );
  if (tables[0] === null) return null;
  return tables.flatMap((t) => (t === null ? [] : parseTcpTable(t))).filter((l) => l.port === port);
}

/** The socket inodes `pid` holds open; empty when it is gone or not ours to read. */
async function socketInodes(pid: number): Promise<Set<number>> {
  const out = new Set<number>();
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) out.add(Number(m[1]));
    }
  } catch {
    // gone, or another user's
  }
  return out;
}

/** Every pid on the machine (from /proc). */
async function allPids(): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) if (/^\d+$/.test(e.name)) pids.push(Number(e.name));
  return pids;
}

/** The command line of `pid`, as `ps` would show it (null when it cannot be read). */
async function commandOf(pid: number): Promise<string | null> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  const text = raw.replaceAll("\0", " ").trim();
  return text ? text.slice(0, 200) : null;
}

/** "pid 1234 (python3 -m http.server 9101)", or who it is when its process cannot be seen. */
async function describeHolder(l: TcpListener, pids: readonly number[]): Promise<string> {
  for (const pid of pids) {
    if ((await socketInodes(pid)).has(l.inode)) {
      const command = await commandOf(pid);
      return `pid ${pid}${command ? ` (${command})` : ""}`;
    }
  }
  return `a process of uid ${l.uid} that this agent cannot see`;
}

/** Every socket inode the processes `pids` hold. */
async function inodesOf(pids: readonly number[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (const pid of pids) for (const inode of await socketInodes(pid)) out.add(inode);
  return out;
}

/** The listeners on `port` that no process of `pids` holds, or null without /proc. */
async function foreignListeners(
  port: number,
  pids: readonly number[],
): Promise<{ all: TcpListener[]; foreign: TcpListener[] } | null> {
  const all = await listeners(port);
  if (all === null) return null;
  const ours = all.length > 0 ? await inodesOf(pids) : new Set<number>();
  return { all, foreign: all.filter((l) => !ours.has(l.inode)) };
}

/**
 * Before an app starts: null when nothing but `mine` (this agent's own app group, none while it
 * is stopped) listens on `port`, else why the release must not start, naming the holder
 * ("port 9101 is held by pid 1234 (python3 -m http.server 9101), not by this agent's app").
 */
export async function portRefusal(
  port: number,
  mine: readonly number[] = [],
): Promise<string | null> {
  const found = await foreignListeners(port, mine);
  if (found === null || found.foreign.length === 0) return null;
  const pids = await allPids();
  const holders = new Set<string>();
  for (const l of found.foreign) holders.add(await describeHolder(l, pids));
  return `port ${port} is held by ${[...holders].join(", ")}, not by this agent's app`;
}

/**
 * During a health check: null when `port` is listened on, and only by processes of `group`
 * (the app's process group), so an answer on it is the app's; else why not. Undefined when
 * this machine has no /proc to tell.
 */
export async function ownershipProblem(
  port: number,
  group: readonly number[],
): Promise<string | null | undefined> {
  const found = await foreignListeners(port, group);
  if (found === null) return undefined;
  if (found.all.length === 0) return `nothing listens on port ${port}`;
  const foreign = found.foreign[0];
  if (!foreign) return null;
  const holder = await describeHolder(foreign, await allPids());
  return `port ${port} is held by ${holder}, not by the app's process`;
}
