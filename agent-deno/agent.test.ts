import assert from "node:assert/strict";
import { sleep } from "../protocol/backoff.ts";
import { type GoalDocument, signGoal, targetOf } from "../protocol/goal.ts";
import type { AppState } from "../protocol/relay-messages.ts";
import { Agent } from "./agent.ts";
import { AgentState } from "./agent-state.ts";
import type { Level } from "./log.ts";
import { buildOf, MapSource, signer, verifier } from "./test-fixtures.ts";

// The "app": a script that sleeps; its health command passes when the artifact says HEALTHY.
// It refuses to start while <state>/apps/web/no-restart exists (a crash loop, on demand).
const script = (buildId: number, healthy: boolean) =>
  new TextEncoder().encode(
    `#!/bin/sh\n# build ${buildId} ${healthy ? "HEALTHY" : "SICK"}\nif [ -e "$FLEETSHIP_RELEASE_DIR/../../no-restart" ]; then echo "refusing to start: no-restart" >&2; exit 3; fi\nexec sleep 600\n${"#".repeat(20_000)}\n`,
  );
const HEALTH = { type: "command" as const, command: `grep -q HEALTHY "$FLEETSHIP_ARTIFACT"` };

function goal(
  generation: number,
  buildId: number,
  digest: string,
  over: Partial<GoalDocument> = {},
): GoalDocument {
  return {
    version: 1,
    region: "us-east",
    app: "web",
    generation,
    deployment_id: generation,
    build_id: buildId,
    manifest_digest: digest,
    run_command: "./web",
    health_check: HEALTH,
    canary: null,
    issued_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    ...over,
  };
}

async function setup() {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const builds = await Promise.all([
    buildOf("web", 1, script(1, true)),
    buildOf("web", 2, script(2, true)),
    buildOf("web", 3, script(3, false)),
  ]);
  const chunks = new Map(builds.flatMap((b) => [...b.chunks]));
  const source = new MapSource(chunks);
  const states: AppState[] = [];
  const events: string[] = [];
  let agent: Agent;
  const make = () =>
    new Agent({
      machineId: "m1",
      region: "us-east",
      stateDir: dir,
      state: new AgentState(kv),
      verifier,
      logger: {
        log(level: Level, event: string, fields: unknown) {
          events.push(event);
          if (level === "error") console.error(event, fields);
        },
      },
      manifests: { manifest: (id) => Promise.resolve(builds[id - 1]!.body) },
      source,
      keepReleases: 2,
      healthTimeoutMs: 1_500,
      settleMs: 500,
      downloadConcurrency: 2,
      appPortBase: 41_000,
      baseEnv: { PATH: "/usr/bin:/bin" },
      onStatus: () => {
        const s = agent.status("web")?.state;
        if (s && states.at(-1) !== s) states.push(s);
      },
    });
  agent = make();
  const offer = async (g: GoalDocument) =>
    await agent.onGoals({
      type: "goals",
      version: g.generation,
      goals: [await signGoal(signer, g)],
    });
  const settle = async (state: AppState, generation: number) => {
    for (let i = 0; i < 200; i++) {
      const s = agent.status("web");
      if (s?.state === state && s.generation === generation) return s;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `not ${state} at generation ${generation}: ${JSON.stringify(agent.status("web"))}`,
    );
  };
  const cleanup = async () => {
    await agent.stop();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  };
  return {
    dir,
    kv,
    builds,
    source,
    states,
    events,
    get agent() {
      return agent;
    },
    offer,
    settle,
    cleanup,
    restart: async () => {
      await agent.stop();
      agent = make();
      await agent.start();
    },
  };
}

const current = (dir: string) => Deno.readLink(`${dir}/apps/web/current`);

Deno.test("Agent converges to a goal: download, install, switch, run, healthy", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  const s = await t.settle("healthy", 1);
  assert.deepEqual(t.states, ["pending", "downloading", "installed", "healthy"]);
  assert.equal(s.running_build_id, 1);
  assert.equal(await current(t.dir), "releases/1");
  assert.ok((await Deno.stat(`${t.dir}/apps/web/releases/1/web`)).mode! & 0o100);
  await t.cleanup();
});

Deno.test("Agent refuses goals that are unsigned, for another region, expired or older than applied", async () => {
  const t = await setup();
  await t.offer(goal(5, 1, t.builds[0]!.digest));
  await t.settle("healthy", 5);
  const refusedBefore = t.events.filter((e) => e === "goal:refused").length;
  const forged = await signGoal(signer, goal(6, 2, t.builds[1]!.digest));
  await t.agent.onGoals({
    type: "goals",
    version: 9,
    goals: [{ ...forged, document: forged.document.replace('"generation":6', '"generation":7') }],
  });
  await t.offer(goal(7, 2, t.builds[1]!.digest, { region: "eu-west" }));
  await t.offer(
    goal(8, 2, t.builds[1]!.digest, { expires_at: new Date(Date.now() - 1000).toISOString() }),
  );
  await t.offer(goal(4, 2, t.builds[1]!.digest));
  assert.equal(t.events.filter((e) => e === "goal:refused").length - refusedBefore, 4);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(t.agent.status("web")?.running_build_id, 1);
  await t.cleanup();
});

Deno.test("Agent: a build failing its health check is replaced by the previous release and reported failed", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  await t.offer(goal(2, 3, t.builds[2]!.digest));
  const s = await t.settle("failed", 2);
  assert.equal(s.build_id, 3);
  assert.equal(s.running_build_id, 1);
  assert.match(s.detail ?? "", /health check failed/);
  assert.equal(await current(t.dir), "releases/1");
  // The failed generation is not retried, even after a restart; the previous release runs.
  await t.restart();
  await t.offer(goal(2, 3, t.builds[2]!.digest));
  const after = await t.settle("failed", 2);
  assert.equal(after.running_build_id, 1);
  assert.equal(t.events.filter((e) => e === "deploy:failed").length, 1);
  await t.cleanup();
});

Deno.test("Agent: a rollback to a kept release downloads nothing", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  await t.offer(goal(2, 2, t.builds[1]!.digest));
  await t.settle("healthy", 2);
  const requests = t.source.requests.length;
  const downloads = t.events.filter((e) => e === "download:started").length;
  await t.offer(goal(3, 1, t.builds[0]!.digest));
  const s = await t.settle("healthy", 3);
  assert.equal(s.running_build_id, 1);
  assert.equal(t.source.requests.length, requests);
  assert.equal(
    t.events.filter((e) => e === "download:started").length,
    downloads,
    "the kept release is switched to, not reassembled",
  );
  assert.equal(await current(t.dir), "releases/1");
  await t.cleanup();
});

Deno.test("Agent restarted with nothing upstream runs its applied release again", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  t.source.down = true;
  await t.restart();
  const s = await t.settle("healthy", 1);
  assert.equal(s.running_build_id, 1);
  await t.cleanup();
});

Deno.test("targetOf() runs the canary build on the machines in its share", () => {
  const canary = { build_id: 9, manifest_digest: "9".repeat(64), percent: 100 };
  assert.equal(targetOf(goal(4, 1, "1".repeat(64), { canary }), "m1").build_id, 9);
  assert.equal(
    targetOf(goal(4, 1, "1".repeat(64), { canary: { ...canary, percent: 0 } }), "m1").build_id,
    1,
  );
  assert.equal(targetOf(goal(4, 1, "1".repeat(64)), "m1").build_id, 1);
});

Deno.test("Agent: a newer goal supersedes a download in progress, whose partial file then goes", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  t.source.delayMs = 30;
  await t.offer(goal(2, 2, t.builds[1]!.digest));
  await t.settle("downloading", 2);
  t.source.delayMs = 0;
  await t.offer(goal(3, 3, t.builds[2]!.digest, { health_check: null }));
  const s = await t.settle("healthy", 3);
  assert.equal(s.running_build_id, 3);
  assert.ok(t.events.includes("deploy:superseded"));
  // The superseded partial goes right after the new release is reported healthy: allow the
  // agent a moment for it (a loaded CI machine once looked in between).
  const partials = async () => {
    const names = [];
    for await (const e of Deno.readDir(`${t.dir}/partial`)) names.push(e.name);
    return names;
  };
  const state = new AgentState(t.kv);
  for (let i = 0; i < 100; i++) {
    if ((await partials()).length === 0 && (await state.downloads("web")).length === 0) break;
    await sleep(50);
  }
  assert.deepEqual(await partials(), []);
  assert.deepEqual(await state.downloads("web"), []);
  await t.cleanup();
});

/** Kills the app's whole process group, as a crash or the OOM killer would. */
async function killApp(kv: Deno.Kv): Promise<void> {
  const running = await new AgentState(kv).process("web");
  assert.ok(running, "the app runs");
  Deno.kill(-running.pid, "SIGKILL");
}

Deno.test("Agent: an app that exits after its health gate makes the machine failed at once, and healthy again only after a restart stayed up", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  const killedAt = Date.now();
  await killApp(t.kv);
  const failed = await t.settle("failed", 1);
  assert.ok(Date.now() - killedAt < 5_000, "reported within 5 s");
  assert.equal(failed.build_id, 1);
  assert.match(
    failed.detail ?? "",
    /^the app's process was killed by SIGKILL after it was healthy; 0 restarts since the release started; next restart at \d\d:\d\d:\d\dZ/,
  );
  assert.ok(t.events.includes("app:crashed"));
  // The supervisor restarts it (backoff 0.5-1 s); healthy again once it stayed up 0.5 s.
  const back = await t.settle("healthy", 1);
  assert.equal(back.restarts, 1, "the restart is counted, not hidden");
  assert.equal(back.detail, null);
  assert.ok(t.events.includes("app:recovered"));
  await t.cleanup();
});

Deno.test("Agent: an app whose restart fails stays failed with the exit code, the restarts and its log's last lines", async () => {
  const t = await setup();
  await t.offer(goal(1, 1, t.builds[0]!.digest));
  await t.settle("healthy", 1);
  await Deno.writeTextFile(`${t.dir}/apps/web/no-restart`, "");
  await killApp(t.kv);
  let s = await t.settle("failed", 1);
  for (let i = 0; i < 100 && !/exited with code 3/.test(s.detail ?? ""); i++) {
    await sleep(50);
    s = t.agent.status("web")!;
  }
  assert.equal(s.state, "failed");
  assert.match(
    s.detail ?? "",
    /^the app's process exited with code 3 after it was healthy; [1-9]\d* restarts? since the release started;/,
  );
  assert.match(s.detail ?? "", /last log: .*refusing to start: no-restart$/);
  assert.ok((s.restarts ?? 0) >= 1);
  // Still failed a while later: a crash loop never reads healthy.
  await sleep(1_500);
  assert.equal(t.agent.status("web")?.state, "failed");
  // Fixed: the next restart stays up, and the machine is healthy again.
  await Deno.remove(`${t.dir}/apps/web/no-restart`);
  for (let i = 0; i < 400 && t.agent.status("web")?.state !== "healthy"; i++) await sleep(50);
  assert.equal(t.agent.status("web")?.state, "healthy");
  await t.cleanup();
});

Deno.test("Agent: a release whose port another process holds fails at once, naming the holder, and starts nothing", async () => {
  const t = await setup();
  // The app's port (--app-port-base 41000, slot 0), held by a listener that is not the agent's
  // app and answers 200 on every path.
  const squatter = Deno.serve(
    { hostname: "127.0.0.1", port: 41_000, onListen() {} },
    () => new Response("ok"),
  );
  try {
    await t.offer(goal(1, 1, t.builds[0]!.digest, { health_check: null }));
    const s = await t.settle("failed", 1);
    assert.match(
      s.detail ?? "",
      new RegExp(
        `^health check failed: not started: port 41000 is held by pid ${Deno.pid} \\(.*\\), not by this agent's app$`,
      ),
    );
    assert.equal(s.running_build_id, null);
    assert.ok(!t.events.includes("app:started"), "the release was never started");
    assert.ok(t.events.includes("app:not-started"));
  } finally {
    await squatter.shutdown();
  }
  await t.cleanup();
});
