// The webtorrent mode of the distribution bench: a seeder with its tracker (the origin, no
// rate limit, like our relay) and N leecher processes with webtorrent's own throttles at the
// same B as our agents, all on loopback (webtorrent-peer.cjs, run by the project's Node).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "../../tests/support/stack.ts";
import { type ProcStats, procStats, spentSince } from "./proc-stats.ts";
import type { ModeOptions, ModeResult } from "./run-mode.ts";

const NODE = new URL("../../node_modules/node/bin/node", import.meta.url).pathname;
const PEER = new URL("./webtorrent-peer.cjs", import.meta.url).pathname;

interface Line {
  event: string;
  [k: string]: unknown;
}

/** A Node process speaking JSON lines on stdout. */
class NodePeer {
  readonly lines: Line[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<void>;

  constructor(
    readonly name: string,
    args: string[],
  ) {
    this.#child = new Deno.Command(NODE, {
      args: [PEER, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const stdout = this.#child.stdout;
    this.done = (async () => {
      let rest = "";
      for await (const bytes of stdout.pipeThrough(new TextDecoderStream())) {
        rest += bytes;
        for (let at = rest.indexOf("\n"); at >= 0; at = rest.indexOf("\n")) {
          const line = rest.slice(0, at);
          rest = rest.slice(at + 1);
          try {
            this.lines.push(JSON.parse(line));
          } catch {
            // not ours
          }
        }
      }
    })();
  }

  get pid(): number {
    return this.#child.pid;
  }

  event(name: string): Line | undefined {
    const error = this.lines.find((l) => l.event === "error");
    if (error) throw new Error(`${this.name}: ${String(error.message)}`);
    return this.lines.find((l) => l.event === name);
  }

  async waitFor(name: string, timeoutMs: number): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.event(name);
      if (line) return line;
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${name} in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async send(text: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${text}\n`));
  }

  /** SIGTERM, then the process's last words (its `stopped` line), SIGKILL past the grace. */
  async stop(graceMs = 5_000): Promise<Line | undefined> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      return this.event("stopped");
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, graceMs);
    await this.#child.status;
    clearTimeout(timer);
    await this.done.catch(() => {});
    return this.lines.find((l) => l.event === "stopped");
  }
}

/** The links and the artifact are the other modes'; the rest (stack, relay, region) is ours. */
export type WebtorrentOptions = Pick<
  ModeOptions,
  "agents" | "artifact" | "limitMiBs" | "uploadLimitMiBs" | "work" | "timeoutMs"
>;

export async function runWebtorrent(
  o: WebtorrentOptions,
): Promise<ModeResult & { stats: ProcStats[] }> {
  const file = join(o.work, "wt-artifact");
  const torrent = join(o.work, "wt.torrent");
  await writeFile(file, o.artifact);
  const peers: NodePeer[] = [];
  try {
    const seeder = new NodePeer("wt-seeder", ["seed", file, torrent, String(await freePort())]);
    peers.push(seeder);
    const seeding = await seeder.waitFor("seeding", 120_000);
    const B = o.limitMiBs * 1024 * 1024;
    const up = o.uploadLimitMiBs === null ? 0 : o.uploadLimitMiBs * 1024 * 1024;
    const leechers: NodePeer[] = [];
    for (let i = 0; i < o.agents; i++) {
      const leecher = new NodePeer(`wt-${i}`, [
        "leech",
        torrent,
        join(o.work, `wt-${i}`),
        String(B),
        String(up),
      ]);
      peers.push(leecher);
      leechers.push(leecher);
    }
    await Promise.all(leechers.map((l) => l.waitFor("ready", 60_000)));
    const atStart = await Promise.all(leechers.map((l) => procStats(l.pid)));
    const t0 = Date.now();
    await Promise.all(leechers.map((l) => l.send("go")));
    const finishes = new Map<string, number>();
    const deadline = t0 + o.timeoutMs;
    while (finishes.size < leechers.length) {
      for (const l of leechers) {
        if (!finishes.has(l.name) && l.event("done")) finishes.set(l.name, Date.now() - t0);
      }
      if (Date.now() > deadline)
        throw new Error(`webtorrent: ${finishes.size} of ${o.agents} done`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const allMs = Date.now() - t0;
    const stats = spentSince(atStart, await Promise.all(leechers.map((l) => procStats(l.pid))));
    const origin = await seeder.stop();
    const pieces = Number(seeding.pieces);
    return {
      mode: "webtorrent",
      finishesMs: [...finishes.values()].sort((a, b) => a - b),
      allMs,
      relayBytes: Number(origin?.uploaded ?? Number.NaN),
      upstreamReads: Number.NaN,
      chunks: pieces,
      peerPieces: Number.NaN,
      relayPieces: Number.NaN,
      relayBusy: Number.NaN,
      stats,
    };
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
  }
}
