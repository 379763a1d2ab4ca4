import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { RelayBusy } from "../agent-deno/piece-source.ts";
import { RelayClient } from "../agent-deno/relay-client.ts";
import { canaryBucket, type GoalDocument, signGoal } from "../protocol/goal.ts";
import { buildManifest } from "../protocol/manifest.ts";
import { signManifest } from "../protocol/manifest-signing.ts";
import {
  decodeRelayMessage,
  encodeRelayMessage,
  type RelayToAgentMessage,
} from "../protocol/relay-messages.ts";
import { generateSigningKeys, Signer } from "../protocol/signing.ts";
import type { Config } from "./config.ts";
import { AGENT_TOKEN, FakeControlPlane, RELAY_TOKEN } from "./fake-control-plane.ts";
import { silentLogger } from "./log.ts";
import { type RunningRelay, startRelay } from "./relay.ts";
import { httpUpstream } from "./upstream.ts";

const keys = await generateSigningKeys();
const signer = await Signer.fromPrivateKey(keys.privateKey);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function goal(generation: number, buildId: number): GoalDocument {
  return {
    version: 1,
    region: "us-east",
    app: "web",
    generation,
    deployment_id: generation,
    build_id: buildId,
    manifest_digest: "d".repeat(64),
    run_command: "./web",
    health_check: null,
    canary: null,
    issued_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  };
}

async function relayFor(
  cp: FakeControlPlane,
  dir: string,
  kv: Deno.Kv,
  maxAgents = 100,
  fallbackSlots = 32,
  statusFormat: Config["statusFormat"] = "summary",
): Promise<RunningRelay> {
  const config: Config = {
    url: cp.url,
    token: RELAY_TOKEN,
    region: "us-east",
    relayId: "relay-a",
    hostname: "127.0.0.1",
    port: 0,
    publicUrl: null,
    cacheDir: dir,
    cacheMaxBytes: 64 << 20,
    publicKey: keys.publicKey,
    tokenTtlMs: 60_000,
    upstreamConcurrency: 4,
    maxAgents,
    fallbackSlots,
    statusFormat,
  };
  const upstream = httpUpstream({
    url: cp.url,
    token: RELAY_TOKEN,
    region: "us-east",
    timeoutMs: 2_000,
  });
  return await startRelay(config, {
    logger: silentLogger,
    kv,
    upstream,
    publicKey: keys.publicKey,
  });
}

/** A minimal agent: says hello, collects what the relay sends. */
async function agentSocket(
  relay: RunningRelay,
  machineId: string,
  labels?: Record<string, string>,
) {
  const received: RelayToAgentMessage[] = [];
  const socket = new WebSocket(`ws://127.0.0.1:${relay.port}/v1/agent`, {
    headers: { Authorization: `Bearer ${AGENT_TOKEN}` },
  });
  socket.onmessage = (e) => {
    const d = decodeRelayMessage(String(e.data), "relay");
    if (d.kind === "message") received.push(d.message);
  };
  const closed = new Promise<void>((resolve) => (socket.onclose = () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("agent socket failed"));
  });
  socket.send(
    encodeRelayMessage({
      type: "hello",
      protocol: 1,
      machine_id: machineId,
      region: "us-east",
      peer_url: null,
      apps: [],
      ...(labels ? { labels } : {}),
    }),
  );
  return {
    received,
    send: (text: string) => socket.send(text),
    close: async () => {
      socket.close();
      await closed;
    },
  };
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const goalsOf = (received: RelayToAgentMessage[]) =>
  received.filter((m) => m.type === "goals").map((m) => (m.type === "goals" ? m : null)!);

Deno.test("relay: agents get the signed goals verbatim on hello and on every change; status goes up", async () => {
  const cp = new FakeControlPlane();
  const g1 = await signGoal(signer, goal(1, 10));
  cp.setGoals([g1]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const agent = await agentSocket(relay, "m1");
  await until("welcome and goals", () => goalsOf(agent.received).length === 1);
  assert.equal(agent.received[0]?.type, "welcome");
  assert.deepEqual(goalsOf(agent.received)[0]?.goals, [g1]);

  const g2 = await signGoal(signer, goal(2, 11));
  cp.setGoals([g2]);
  await until("the pushed change", () => goalsOf(agent.received).length === 2);
  assert.deepEqual(goalsOf(agent.received)[1], { type: "goals", version: 2, goals: [g2] });

  agent.send(
    encodeRelayMessage({
      type: "status",
      apps: [
        {
          app: "web",
          build_id: 11,
          generation: 2,
          state: "healthy",
          detail: null,
          running_build_id: 11,
          progress: null,
        },
      ],
    }),
  );
  const status = await until("status up", () =>
    cp.relayMessages.find(
      (m) => m.type === "summary" && JSON.stringify(m.apps).includes("healthy"),
    ),
  );
  // Counts, not machines: the message grows with apps and states only (and with the machines
  // that said hello since the last one, named once).
  const { arrived: _, ...counts } = status;
  assert.ok(up(cp).some((m) => m.type === "summary" && m.arrived?.includes("m1")));
  assert.deepEqual(counts, {
    type: "summary",
    relay_id: "relay-a",
    machines: 1,
    apps: [
      {
        app: "web",
        goal_generation: 2,
        counts: [{ build_id: 11, generation: 2, state: "healthy", canary: false, n: 1 }],
        away: 0,
      },
    ],
    problems: [],
    problems_total: 0,
    label_sets: [{ labels: {}, n: 1 }],
    label_sets_other: 0,
  });
  assert.deepEqual(cp.relayMessages[0], {
    type: "hello",
    relay_id: "relay-a",
    url: `ws://127.0.0.1:${relay.port}/v1/agent`,
  });
  agent.send('{"type":"have","bits":"AA=="}'); // unknown kinds are not fatal
  agent.send("garbage");
  agent.send(encodeRelayMessage({ type: "ping", nonce: 7 }));
  await until("pong", () => agent.received.some((m) => m.type === "pong" && m.nonce === 7));

  await agent.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

/** What the relay sent up (the tests pick the fields they check). */
const up = (cp: FakeControlPlane): any[] => cp.relayMessages;

const appStatus = (app: string, state: "healthy" | "failed", detail: string | null = null) => ({
  app,
  build_id: 11,
  generation: 2,
  state,
  detail,
  running_build_id: 11,
  progress: null,
});

Deno.test("relay: answers the control plane's queries: a page of machines in order, and a canary histogram", async () => {
  const cp = new FakeControlPlane();
  cp.setGoals([await signGoal(signer, goal(2, 11))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const agents = [];
  for (const id of ["m3", "m1", "m2"]) {
    const a = await agentSocket(relay, id);
    a.send(
      encodeRelayMessage({
        type: "status",
        apps: [appStatus("web", id === "m2" ? "failed" : "healthy", id === "m2" ? "boom" : null)],
      }),
    );
    agents.push(a);
  }
  const summary = await until("three machines counted", () =>
    up(cp).find((m) => m.type === "summary" && m.machines === 3 && m.problems_total === 1),
  );
  assert.deepEqual(
    summary.problems.map((p: { machine_id: string; problem: string }) => [p.machine_id, p.problem]),
    [["m2", "failed"]],
  );
  await until("every status counted", () =>
    cp.relayMessages.some(
      (m) =>
        m.type === "summary" &&
        JSON.stringify(m.apps).includes('"state":"healthy","canary":false,"n":2'),
    ),
  );
  cp.sendToRelays({
    type: "machines_query",
    id: 7,
    app: "web",
    state: null,
    after: null,
    limit: 2,
  });
  const page = await until("a page", () =>
    up(cp).find((m) => m.type === "machines_page" && m.id === 7),
  );
  assert.deepEqual(
    page.machines.map((m: { machine_id: string }) => m.machine_id),
    ["m1", "m2"],
  );
  assert.equal(page.more, true);
  cp.sendToRelays({
    type: "machines_query",
    id: 8,
    app: "web",
    state: null,
    after: ["m2", "web"],
    limit: 2,
  });
  const next = await until("the next page", () =>
    up(cp).find((m) => m.type === "machines_page" && m.id === 8),
  );
  assert.deepEqual(
    next.machines.map((m: { machine_id: string }) => m.machine_id),
    ["m3"],
  );
  assert.equal(next.more, false);
  cp.sendToRelays({
    type: "machines_query",
    id: 9,
    app: null,
    state: "failed",
    after: null,
    limit: 10,
  });
  const failed = await until("failed only", () =>
    up(cp).find((m) => m.type === "machines_page" && m.id === 9),
  );
  assert.deepEqual(failed.machines, [
    {
      machine_id: "m2",
      app: "web",
      build_id: 11,
      generation: 2,
      state: "failed",
      detail: "boom",
      connected: true,
    },
  ]);
  cp.sendToRelays({ type: "canary_query", id: 10, app: "web", deployment_id: 5 });
  const hist = await until("a histogram", () =>
    up(cp).find((m) => m.type === "canary_histogram" && m.id === 10),
  );
  const expected = new Array(100).fill(0);
  for (const id of ["m1", "m2", "m3"]) expected[canaryBucket(id, 5)]++;
  assert.deepEqual(hist.counts, expected);
  for (const a of agents) await a.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: names the machines that arrived, and forgets an away machine the control plane says moved", async () => {
  const cp = new FakeControlPlane();
  cp.setGoals([await signGoal(signer, goal(2, 11))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const a1 = await agentSocket(relay, "m1");
  const a2 = await agentSocket(relay, "m2");
  for (const a of [a1, a2]) {
    a.send(encodeRelayMessage({ type: "status", apps: [appStatus("web", "healthy", null)] }));
  }
  const named = new Set<string>();
  await until("both arrivals named", () => {
    for (const m of up(cp))
      if (m.type === "summary") for (const id of m.arrived ?? []) named.add(id);
    return named.has("m1") && named.has("m2");
  });
  await a2.close();
  await until("m2 away", () =>
    up(cp).find((m) => m.type === "summary" && m.apps[0]?.away === 1 && m.machines === 2),
  );
  // Another relay of the region has m2 now; a connected machine is never forgotten.
  cp.sendToRelays({ type: "forget", machine_ids: ["m2", "m1"] });
  const after = await until("m2 forgotten, m1 kept", () =>
    up(cp).find((m) => m.type === "summary" && m.machines === 1 && m.apps[0]?.away === 0),
  );
  assert.equal(
    after.apps[0].counts.reduce((n: number, c: { n: number }) => n + c.n, 0),
    1,
  );
  await a1.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: counts machines by label set, and a canary of a placement counts only the machines it places", async () => {
  const cp = new FakeControlPlane();
  cp.setGoals([await signGoal(signer, goal(2, 11))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const agents = [
    await agentSocket(relay, "w1", { pool: "web" }),
    await agentSocket(relay, "w2", { pool: "web", zone: "b" }),
    await agentSocket(relay, "a1", { pool: "api" }),
    await agentSocket(relay, "n1"),
  ];
  const summary = await until("four machines by label set", () =>
    up(cp).find((m) => m.type === "summary" && m.machines === 4 && m.label_sets?.length === 4),
  );
  assert.deepEqual(
    summary.label_sets.map((l: { labels: object; n: number }) => [l.labels, l.n]).sort(),
    [
      [{ pool: "web" }, 1],
      [{ pool: "web", zone: "b" }, 1],
      [{ pool: "api" }, 1],
      [{}, 1],
    ].sort(),
  );
  cp.sendToRelays({
    type: "canary_query",
    id: 3,
    app: "web",
    deployment_id: 9,
    labels: { pool: "web" },
  });
  const hist = await until("a placed histogram", () =>
    up(cp).find((m) => m.type === "canary_histogram" && m.id === 3),
  );
  const expected = new Array(100).fill(0);
  for (const id of ["w1", "w2"]) expected[canaryBucket(id, 9)]++;
  assert.deepEqual(hist.counts, expected);
  for (const a of agents) await a.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: with --status-format list, reports every machine as relays before step 12 did", async () => {
  const cp = new FakeControlPlane();
  cp.setGoals([await signGoal(signer, goal(2, 11))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv, 100, 32, "list");
  const agent = await agentSocket(relay, "m1");
  agent.send(encodeRelayMessage({ type: "status", apps: [appStatus("web", "healthy")] }));
  const status = await until("the list", () =>
    up(cp).find((m) => m.type === "status" && m.machines.length === 1),
  );
  assert.deepEqual(status.machines, [
    {
      machine_id: "m1",
      app: "web",
      build_id: 11,
      generation: 2,
      state: "healthy",
      detail: null,
      connected: true,
    },
  ]);
  await agent.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: serves a chunk to three agents at once from one upstream read, and the manifest", async () => {
  const cp = new FakeControlPlane();
  const bytes = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 13) & 0xff);
  const digest = sha(bytes);
  cp.chunks.set(digest, bytes);
  const manifest = buildManifest(
    { app: "web", build_id: 10, commit_sha: "a".repeat(40) },
    {
      params: {
        algorithm: "fastcdc-2020",
        min_size: 64,
        avg_size: 256,
        max_size: 1 << 20,
        normalization: 1,
      },
      chunks: [{ digest, size: bytes.length }],
      sha256: digest,
    },
  );
  const signed = await signManifest(signer, manifest);
  const body = JSON.stringify({
    manifest: signed.manifest,
    signature: signed.signature,
    public_key: keys.publicKey,
  });
  cp.manifests.set(10, body);
  cp.manifests.set(
    11,
    JSON.stringify({ manifest: signed.manifest, signature: signed.signature.replace(/^A/, "B") }),
  );
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const base = `http://127.0.0.1:${relay.port}`;
  const get = (path: string, token = AGENT_TOKEN) =>
    fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });

  const refused = await get(`/v1/chunks/${digest}`, "fst_not_a_real_token");
  assert.equal(refused.status, 401);
  await refused.body?.cancel();
  const answers = await Promise.all([1, 2, 3].map(() => get(`/v1/chunks/${digest}`)));
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(sha(new Uint8Array(await a.arrayBuffer())), digest);
  }
  assert.equal(cp.chunkReads.get(digest), 1);
  assert.equal(relay.metrics.get("relay_upstream_reads_total"), 1);
  assert.equal(relay.metrics.get("relay_chunks_served_total"), 3);

  const m = await get("/v1/builds/10/manifest");
  assert.equal(await m.text(), body);
  const forged = await get("/v1/builds/11/manifest");
  assert.equal(forged.status, 502, "a manifest whose signature fails is not passed on");
  await forged.body?.cancel();
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /relay_upstream_reads_total\{relay_id="relay-a",region="us-east"\} 1/);
  assert.match(metrics, /relay_cache_bytes\{[^}]*\} 200000/);
  const health = await (await fetch(`${base}/healthz`)).json();
  assert.equal(health.status, "ok");

  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: without the subscription socket, goals still arrive by long-poll", async () => {
  const cp = new FakeControlPlane();
  cp.refuseSubscribe = true;
  cp.setGoals([await signGoal(signer, goal(1, 10))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv);
  const agent = await agentSocket(relay, "m1");
  await until("first goals", () => goalsOf(agent.received).length >= 1);
  const g2 = await signGoal(signer, goal(2, 11));
  cp.setGoals([g2]);
  await until("goals by poll", () => goalsOf(agent.received).some((m) => m.version === 2), 3_000);
  assert.equal(cp.subscribers, 0);
  await agent.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: restarted with the control plane down, it serves known agents the goals it kept", async () => {
  const cp = new FakeControlPlane();
  const g1 = await signGoal(signer, goal(1, 10));
  cp.setGoals([g1]);
  const dir = await Deno.makeTempDir();
  let kv = await Deno.openKv(`${dir}/relay.kv`);
  let relay = await relayFor(cp, dir, kv);
  const first = await agentSocket(relay, "m1");
  await until("goals", () => goalsOf(first.received).length === 1);
  await first.close();
  await relay.stop();
  kv.close();
  await cp.close();

  kv = await Deno.openKv(`${dir}/relay.kv`);
  relay = await relayFor(cp, dir, kv); // cp.url now answers nothing
  const again = await agentSocket(relay, "m1");
  await until("goals from disk", () => goalsOf(again.received).length === 1);
  assert.deepEqual(goalsOf(again.received)[0]?.goals, [g1]);
  await again.close();
  await relay.stop();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: past --max-agents a new agent gets 503 relay_full, and a freed place is taken again", async () => {
  const cp = new FakeControlPlane();
  cp.setGoals([await signGoal(signer, goal(1, 10))]);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv, 1);
  const first = await agentSocket(relay, "m1");
  const refused = await fetch(`http://127.0.0.1:${relay.port}/v1/agent`, {
    headers: {
      Authorization: `Bearer ${AGENT_TOKEN}`,
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "13",
    },
  });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("Retry-After"), "30");
  assert.equal((await refused.json()).error.code, "relay_full");
  await assert.rejects(agentSocket(relay, "m2"));
  const metrics = await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text();
  assert.match(metrics, /relay_agents_refused_total\{[^}]*\} 2/);
  await first.close();
  let again: Awaited<ReturnType<typeof agentSocket>> | null = null;
  for (let i = 0; i < 50 && !again; i++) {
    again = await agentSocket(relay, "m2").catch(() => null);
    if (!again) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(again, "the freed place was not taken again");
  await again.close();
  await relay.stop();
  await cp.close();
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("relay: past --fallback-slots a mesh agent's fallback ask gets 503 relay_busy; seeding and relay-only asks are still served", async () => {
  const cp = new FakeControlPlane();
  // Large enough that an unread answer holds its slot (more than loopback's socket buffers).
  const bytes = Uint8Array.from({ length: 16 << 20 }, (_, i) => (i * 31 + (i >> 11)) & 0xff);
  const digest = sha(bytes);
  cp.chunks.set(digest, bytes);
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  const relay = await relayFor(cp, dir, kv, 100, 1);
  const base = `http://127.0.0.1:${relay.port}`;
  const get = (query = "") =>
    fetch(`${base}/v1/chunks/${digest}${query}`, {
      headers: { Authorization: `Bearer ${AGENT_TOKEN}` },
    });
  const client = new RelayClient({ relays: [base], token: AGENT_TOKEN, preferred: () => null });
  const piece = { digest, size: bytes.length };
  const signal = new AbortController().signal;
  try {
    const holding = await get("?fallback=1");
    assert.equal(holding.status, 200); // the one slot, held while its body is unread

    const busy = await get("?fallback=1");
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get("Retry-After"), "1");
    assert.equal((await busy.json()).error.code, "relay_busy");
    await assert.rejects(client.fetchPiece(piece, signal, { fallback: true }), RelayBusy);
    assert.equal(relay.metrics.get("relay_chunks_busy_total"), 2);

    // An ask without the flag (a chunk the tracker asked it to seed, or an agent without a
    // mesh) is served whatever the load.
    const plain = await client.fetchPiece(piece, signal);
    assert.equal(sha(plain.bytes), digest);

    // The slot is free again once the held answer has been read to its end...
    assert.equal(sha(new Uint8Array(await holding.arrayBuffer())), digest);
    const after = await client.fetchPiece(piece, signal, { fallback: true });
    assert.equal(sha(after.bytes), digest);
    // ...or once its reader gives up on it.
    const abandoned = await get("?fallback=1");
    assert.equal(abandoned.status, 200);
    await abandoned.body?.cancel();
    let served: Response | null = null;
    for (let i = 0; i < 100 && !served; i++) {
      const r = await get("?fallback=1");
      if (r.status === 200) served = r;
      else {
        await r.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    assert.ok(served, "a cancelled answer did not give its slot back");
    assert.equal(sha(new Uint8Array(await served.arrayBuffer())), digest);
    assert.equal(cp.chunkReads.get(digest), 1, "refusals read nothing upstream");
  } finally {
    await relay.stop();
    await cp.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
