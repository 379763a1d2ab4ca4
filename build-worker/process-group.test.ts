// deno-lint-ignore-file require-await -- fakes and callbacks implement async contracts without awaiting
import assert from "node:assert/strict";
import { type RunOptions, runInProcessGroup } from "./process-group.ts";

const PATH = Deno.env.get("PATH") ?? "/usr/bin:/bin";

function options(lines: string[], overrides: Partial<RunOptions> = {}): RunOptions {
  return {
    cwd: Deno.cwd(),
    env: { PATH },
    onLine: async (line) => void lines.push(line),
    signal: new AbortController().signal,
    killGraceMs: () => 0,
    ...overrides,
  };
}

/** Whether `pid` is a live process (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Whether `pid` is gone within a second (a SIGKILL takes effect asynchronously). */
async function gone(pid: number): Promise<boolean> {
  assert.ok(pid > 0, "the command printed its background pid");
  for (let i = 0; i < 20 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !alive(pid);
}

Deno.test("runInProcessGroup() streams stdout and stderr lines and returns the exit code", async () => {
  const lines: string[] = [];
  const result = await runInProcessGroup(
    "echo out; echo err >&2; printf 'no newline'; exit 7",
    options(lines),
  );
  assert.deepEqual(result, { code: 7, signal: null, aborted: false });
  assert.deepEqual([...lines].sort(), ["err", "no newline", "out"]);
});

Deno.test("runInProcessGroup() passes only the environment it is given", async () => {
  Deno.env.set("FLEETSHIP_BUILDER_TOKEN", "secret");
  try {
    const lines: string[] = [];
    await runInProcessGroup(`echo "token=\${FLEETSHIP_BUILDER_TOKEN:-none} app=$FLEETSHIP_APP"`, {
      ...options(lines),
      env: { PATH, FLEETSHIP_APP: "demo" },
    });
    assert.deepEqual(lines, ["token=none app=demo"]);
  } finally {
    Deno.env.delete("FLEETSHIP_BUILDER_TOKEN");
  }
});

Deno.test("runInProcessGroup() runs the command as the leader of its own group", async () => {
  const lines: string[] = [];
  let pid = 0;
  await runInProcessGroup("ps -o pgid= -p $$", { ...options(lines), onStart: (p) => (pid = p) });
  assert.equal(Number(lines[0]), pid);
});

Deno.test("runInProcessGroup() kills the whole group when aborted", async () => {
  const lines: string[] = [];
  const controller = new AbortController();
  const started = Date.now();
  const run = runInProcessGroup("sleep 300 & echo $!; sleep 300", {
    ...options(lines),
    signal: controller.signal,
    onLine: async (line) => {
      lines.push(line);
      controller.abort();
    },
  });
  const result = await run;
  assert.equal(result.aborted, true);
  assert.equal(result.signal, "SIGKILL");
  assert.ok(Date.now() - started < 5_000);
  assert.ok(await gone(Number(lines[0])), "the background sleep was killed too");
});

Deno.test("runInProcessGroup() gives the group killGraceMs between SIGTERM and SIGKILL", async () => {
  const lines: string[] = [];
  const controller = new AbortController();
  const result = await runInProcessGroup(
    "trap 'echo got TERM; exit 0' TERM; echo ready; sleep 300 & wait",
    {
      ...options(lines),
      signal: controller.signal,
      killGraceMs: () => 2_000,
      onLine: async (line) => {
        lines.push(line);
        if (line === "ready") controller.abort();
      },
    },
  );
  assert.equal(result.aborted, true);
  assert.deepEqual(lines, ["ready", "got TERM"]);
});

Deno.test("runInProcessGroup() kills what the command left running once it exits", async () => {
  const lines: string[] = [];
  const started = Date.now();
  const result = await runInProcessGroup("sleep 300 & echo $!", options(lines));
  assert.equal(result.code, 0);
  assert.ok(Date.now() - started < 5_000, "does not wait for the background process");
  assert.ok(await gone(Number(lines[0])));
});
