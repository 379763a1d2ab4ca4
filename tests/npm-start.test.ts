// `npm start` as a newcomer runs it (dev/start.ts, not --bare): it ends with READY, every local
// agent's sample app answers with the deployed build, and Ctrl-C leaves no process behind.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DENO, freePort, ROOT } from "./support/stack.ts";

async function bindable(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose `count` ports `step` apart are all free. */
async function freeRange(count: number, step: number): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await bindable(base + i * step);
    if (ok) return base;
  }
  throw new Error("no free port range");
}

/** Processes whose command line or working directory lies under `dir`. */
async function processesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ");
      const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "");
      if (cmd.includes(dir) || cwd.startsWith(dir)) found.push(`${pid}: ${cmd.slice(0, 120)}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

let child: ChildProcess | undefined;
let dataDir = "";
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("npm start (the whole system)", () => {
  it("ends with READY, every agent's app answers with the deployed build, and Ctrl-C leaves nothing running", async () => {
    dataDir = await mkdtemp(join(tmpdir(), "fleetship-start-"));
    const port = await freePort();
    const appBase = await freeRange(9, 10);
    const relayBase = await freeRange(6, 1);
    child = spawn(
      DENO,
      [
        ...["run", "--allow-all", "dev/start.ts", "--data", dataDir],
        ...["--port", String(port), "--libsql-port", String(await freePort())],
        ...["--relay-port-base", String(relayBase), "--app-port-base", String(appBase)],
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
      child!.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))),
    );
    const deadline = Date.now() + 240_000;
    while (!/^READY (\S+)$/m.test(out)) {
      if (child.exitCode !== null) throw new Error(`npm start exited:\n${out.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`no READY in 240 s:\n${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(/^READY (\S+)$/m.exec(out)![1]).toBe(`http://127.0.0.1:${port}/ui`);

    const local = JSON.parse(await readFile(join(dataDir, "local.json"), "utf8"));
    const deployments = await (
      await fetch(`http://127.0.0.1:${port}/v1/deployments?app=sample-app`, {
        headers: { Authorization: `Bearer ${local.tokens.deployer}` },
      })
    ).json();
    const latest = deployments.deployments[0];
    expect(latest.status).toBe("SUCCEEDED");
    const answers = [];
    for (let i = 0; i < 9; i++) {
      const r = await fetch(`http://127.0.0.1:${appBase + i * 10}/`);
      answers.push((await r.json()).build_id);
    }
    expect(answers).toEqual(Array(9).fill(String(latest.build_id)));
    expect(local.regions.map((r: { relays: string[] }) => r.relays.length)).toEqual([2, 2, 2]);

    // What the check below looks for is there while it runs (relays, agents, apps, workerd).
    expect((await processesUnder(dataDir)).length).toBeGreaterThanOrEqual(9);
    child.kill("SIGINT");
    const code = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(() => r("still running 30 s after SIGINT"), 30_000)),
    ]);
    expect(code).toBe(0);
    // Give the kernel a moment to reap, then nothing started under the data directory is left.
    let left: string[] = [];
    for (let i = 0; i < 20; i++) {
      left = await processesUnder(dataDir);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(left).toEqual([]);
  }, 300_000);
});
