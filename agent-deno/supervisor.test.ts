import assert from "node:assert/strict";
import { Backoff } from "../protocol/backoff.ts";
import type { RunningProcess } from "./agent-state.ts";
import type { Level } from "./log.ts";
import { Supervisor, stopOrphan } from "./supervisor.ts";

async function pidsRunning(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("ps", { args: ["-e", "-ww", "-o", "pid=,args="] }).output();
  return new TextDecoder()
    .decode(out.stdout)
    .split("\n")
    .filter((l) => l.includes(pattern) && !l.includes("ps -e"))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

Deno.test("Supervisor restarts a crashed app after a backoff, and stop() ends the whole group", async () => {
  const dir = await Deno.makeTempDir();
  const events: string[] = [];
  const logger = { log: (_l: Level, event: string) => void events.push(event) };
  const s = new Supervisor({
    app: "web",
    logger,
    logFile: `${dir}/app.log`,
    record: () => Promise.resolve(),
    backoff: new Backoff({ baseMs: 50, maxMs: 100 }),
  });
  // Crashes on its first run (no marker yet), then stays up with a child of its own.
  const marker = `fleetship-sup-${crypto.randomUUID()}`;
  await s.start({
    buildId: 1,
    dir,
    command: `if [ -f ran ]; then sh -c 'sleep 600; true' ${marker} & wait; else touch ran; echo crashing; exit 3; fi`,
    env: { PATH: "/usr/bin:/bin" },
    port: 1,
  });
  for (let i = 0; i < 100 && events.filter((e) => e === "app:started").length < 2; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(events.slice(0, 4), [
    "app:started",
    "app:exited",
    "app:restarting",
    "app:started",
  ]);
  for (let i = 0; i < 50 && (await pidsRunning(marker)).length === 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.ok((await pidsRunning(marker)).length > 0);
  await s.stop();
  // SIGKILL is delivered asynchronously: give the group a moment to vanish.
  for (let i = 0; i < 50 && (await pidsRunning(marker)).length > 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(await pidsRunning(marker), []);
  assert.match(await Deno.readTextFile(`${dir}/app.log`), /crashing/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stopOrphan() stops the app a killed agent left behind, and only if it is ours", async () => {
  const dir = await Deno.makeTempDir();
  const marker = `fleetship-orphan-${crypto.randomUUID()}`;
  // A stand-in agent in its own process, killed with SIGKILL while its app runs.
  const agentScript = `${dir}/agent.ts`;
  await Deno.writeTextFile(
    agentScript,
    `import { Supervisor } from ${JSON.stringify(new URL("./supervisor.ts", import.meta.url).href)};
const s = new Supervisor({ app: "web", logger: { log() {} }, logFile: ${JSON.stringify(`${dir}/app.log`)},
  record: (p) => { if (p) console.log(JSON.stringify(p)); return Promise.resolve(); } });
await s.start({ buildId: 1, dir: ${JSON.stringify(dir)}, command: "sh -c 'sleep 600; true' ${marker}", env: { PATH: "/usr/bin:/bin" }, port: 1 });
await new Promise(() => {});`,
  );
  const agent = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", agentScript],
    stdout: "piped",
  }).spawn();
  const reader = agent.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const recorded = JSON.parse((await reader.read()).value!) as RunningProcess;
  agent.kill("SIGKILL");
  await agent.status;
  await reader.cancel();
  assert.ok((await pidsRunning(marker)).length > 0, "the app outlived its agent");
  assert.equal(await stopOrphan({ ...recorded, instance: "someone-else" }), false);
  assert.ok((await pidsRunning(marker)).length > 0);
  assert.equal(await stopOrphan(recorded), true);
  assert.deepEqual(await pidsRunning(marker), []);
  assert.equal(await stopOrphan(recorded), false);
  await Deno.remove(dir, { recursive: true });
});
