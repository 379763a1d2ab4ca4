import assert from "node:assert/strict";
import {
  decodeRelayMessage,
  encodeRelayMessage,
  type GoalsMessage,
} from "../protocol/relay-messages.ts";
import { silentLogger } from "./log.ts";
import { RelayClient } from "./relay-client.ts";
import { RelayLink } from "./relay-link.ts";

const SIG = `${"A".repeat(86)}==`;

/** A relay stand-in: welcomes, sends one goals frame, records what agents send; serves one chunk. */
function fakeRelay(id: string, chunk: Uint8Array) {
  const received: string[] = [];
  const sockets = new Set<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (new URL(req.url).pathname.startsWith("/v1/chunks/"))
      return new Response(chunk as Uint8Array<ArrayBuffer>);
    assert.equal(req.headers.get("Authorization"), "Bearer fst_agent_token");
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onmessage = (e) => {
      received.push(String(e.data));
      const d = decodeRelayMessage(String(e.data), "agent");
      if (d.kind === "message" && d.message.type === "hello") {
        socket.send(
          encodeRelayMessage({ type: "welcome", protocol: 1, relay_id: id, region: "us-east" }),
        );
        socket.send(
          encodeRelayMessage({
            type: "goals",
            version: 3,
            goals: [{ document: `{"relay":"${id}"}`, signature: SIG }],
          }),
        );
        socket.send('{"type":"peers","peers":[]}'); // a kind this agent does not know yet
      }
    };
    socket.onclose = () => sockets.delete(socket);
    return response;
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    received,
    close: async () => {
      for (const s of sockets) s.close();
      await server.shutdown();
    },
  };
}

async function until(what: string, fn: () => boolean) {
  for (let i = 0; i < 300 && !fn(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fn(), what);
}

Deno.test("RelayLink skips a dead relay, takes goals, sends status, and fails over when its relay goes", async () => {
  const dead = "http://127.0.0.1:9"; // nothing listens on the discard port
  const a = fakeRelay("relay-a", new Uint8Array(0));
  const b = fakeRelay("relay-b", new Uint8Array(0));
  const goals: [string, GoalsMessage][] = [];
  const unknown: string[] = [];
  const link = new RelayLink({
    relays: [dead, a.url, b.url],
    token: "fst_agent_token",
    machineId: "m1",
    region: "us-east",
    peerUrl: null,
    apps: () => [],
    onGoals: (m, relay) => goals.push([relay, m]),
    onUnknown: (type) => unknown.push(type),
    logger: silentLogger,
  });
  const stop = new AbortController();
  const running = link.run(stop.signal);
  await until("connected to relay a", () => link.current === a.url && goals.length === 1);
  assert.equal(goals[0]![1].goals[0]!.document, '{"relay":"relay-a"}');
  assert.deepEqual(unknown, ["peers"]);
  link.sendStatus();
  await until("status at relay a", () => a.received.some((t) => t.includes('"type":"status"')));
  const hello = JSON.parse(a.received[0]!);
  assert.deepEqual(hello, {
    type: "hello",
    protocol: 1,
    machine_id: "m1",
    region: "us-east",
    peer_url: null,
    apps: [],
  });

  await a.close();
  await until("failed over to relay b", () => link.current === b.url && goals.length === 2);
  assert.equal(goals[1]![0], b.url);
  stop.abort();
  await running;
  await b.close();
});

Deno.test("RelayClient asks the connected relay first, and the others first for a digest one served wrong", async () => {
  const a = fakeRelay("relay-a", new Uint8Array([1, 2, 3]));
  const b = fakeRelay("relay-b", new Uint8Array([4, 5, 6]));
  let preferred: string | null = b.url;
  const client = new RelayClient({
    relays: [a.url, b.url],
    token: "fst_agent_token",
    preferred: () => preferred,
  });
  const piece = { digest: "e".repeat(64), size: 3 };
  const signal = new AbortController().signal;
  assert.deepEqual(await client.fetchPiece(piece, signal), {
    bytes: new Uint8Array([4, 5, 6]),
    from: b.url,
  });
  client.reportBad(piece, b.url);
  assert.deepEqual((await client.fetchPiece(piece, signal)).from, a.url);
  preferred = null;
  await a.close();
  // a is gone: the next relay answers.
  assert.deepEqual(
    (await client.fetchPiece({ digest: "f".repeat(64), size: 3 }, signal)).from,
    b.url,
  );
  await b.close();
});
