import assert from "node:assert/strict";
import { parseHave } from "../protocol/peer-tracker.ts";
import { silentLogger } from "./log.ts";
import { Mesh } from "./mesh.ts";
import { PieceUnavailable, RelayBusy } from "./piece-source.ts";

const relay = {
  name: "relay",
  fetchPiece: () => Promise.reject(new PieceUnavailable("not in this test")),
};

function meshSending(maxPeers: number) {
  const sent: unknown[] = [];
  const mesh = new Mesh({
    machineId: "m1",
    relay,
    logger: silentLogger,
    maxPeers,
    sendToRelay: (frame) => {
      sent.push(JSON.parse(frame));
      return true;
    },
  });
  return { mesh, sent };
}

const start = {
  buildId: 3,
  sizes: [10, 10, 10],
  done: new Uint8Array(1),
  partialPath: "/nonexistent/partial",
  releasePath: "/nonexistent/release",
};

Deno.test("Mesh asks the tracker for peers while it has room, not once it is done", () => {
  const { mesh, sent } = meshSending(12);
  try {
    const tracking = mesh.begin(start);
    assert.equal(parseHave(sent.at(-1))?.wantPeers, true);
    tracking.end();
    const after = parseHave(sent.at(-1));
    assert.equal(after?.buildId, 3);
    assert.equal(after?.wantPeers, false); // finished: it only serves
  } finally {
    mesh.stop();
  }
});

Deno.test("Mesh with no room for peers reports what it holds without asking for peers", () => {
  const { mesh, sent } = meshSending(0);
  try {
    mesh.begin(start);
    const have = parseHave(sent.at(-1));
    assert.equal(have?.chunks, 3);
    assert.equal(have?.wantPeers, false);
  } finally {
    mesh.stop();
  }
});

/** A WebSocket stand-in: two ends in memory, frames delivered on a later macrotask. */
class MemorySocket {
  binaryType = "arraybuffer";
  readyState: number = WebSocket.OPEN;
  other!: MemorySocket;
  onmessage: ((e: { data: ArrayBuffer }) => void) | null = null;
  onclose: (() => void) | null = null;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  send(frame: Uint8Array) {
    const data = frame.slice().buffer;
    setTimeout(() => this.other.onmessage?.({ data }), 0);
  }
  close() {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = this.other.readyState = WebSocket.CLOSED;
    setTimeout(() => {
      this.onclose?.();
      this.other.onclose?.();
    }, 0);
  }
  static pair(): [MemorySocket, MemorySocket] {
    const a = new MemorySocket();
    const b = new MemorySocket();
    a.other = b;
    b.other = a;
    return [a, b];
  }
}

function logged() {
  const events: { event: string; fields: Record<string, unknown> }[] = [];
  return {
    events,
    logger: {
      log: (_level: string, event: string, fields: Record<string, unknown>) =>
        events.push({ event, fields }),
    } as unknown as typeof silentLogger,
  };
}

Deno.test("Mesh asks another holder when a peer stalls, and drops a peer after 3 timeouts in a row", async () => {
  const key = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
  const bytes = new Uint8Array(10).fill(1);
  const good = { fetched: 0 };
  const peers = new Map<string, Mesh>();
  const { events, logger } = logged();
  let connects = 0;
  const holder = (id: string, stall: boolean) =>
    new Mesh({
      machineId: id,
      relay,
      logger: silentLogger,
      sendToRelay: () => true,
      stallUploads: stall,
    });
  // The stalled peer and the good one hold every chunk (a finished download of build 3).
  for (const [id, stall] of [
    ["stalled", true],
    ["good", false],
  ] as const) {
    const m = holder(id, stall);
    m.builds.add({ ...start, done: new Uint8Array([0b111]) });
    // The good peer serves from memory instead of a file.
    m.builds.read = () => {
      if (!stall) good.fetched++;
      return Promise.resolve(bytes.slice());
    };
    peers.set(id, m);
  }
  const mesh = new Mesh({
    machineId: "m1",
    relay,
    logger,
    sendToRelay: () => true,
    requestTimeoutMs: 50,
    relayGraceMs: 0,
    connect: (url) => {
      connects++;
      const id = new URL(url).hostname;
      const [mine, theirs] = MemorySocket.pair();
      peers.get(id)!.accept(theirs as unknown as WebSocket, "m1");
      return mine as unknown as WebSocket;
    },
  });
  const peersFrame = (ids: string[]) => ({
    type: "peers",
    build_id: 3,
    peer_key: key,
    seed: [],
    peers: ids.map((id) => ({
      machine_id: id,
      peer_url: `ws://${id}/v1/peer`,
      ticket: "0".repeat(64),
    })),
  });
  try {
    mesh.begin(start);
    // Only the stalled peer at first: each request times out, so the relay (which fails
    // here) is asked; three in a row and the stalled peer is dropped.
    mesh.onRelayFrame("peers", peersFrame(["stalled"]));
    await new Promise((r) => setTimeout(r, 20)); // its have arrives
    for (const index of [0, 1, 2]) {
      const piece = { digest: `d${index}`, size: 10, buildId: 3, index };
      await assert.rejects(mesh.fetchPiece(piece, AbortSignal.timeout(5_000)), PieceUnavailable);
    }
    const timeouts = events.filter((e) => e.event === "peer:timeout");
    assert.deepEqual(
      timeouts.map((e) => [e.fields.peer, e.fields.in_a_row]),
      [
        ["stalled", 1],
        ["stalled", 2],
        ["stalled", 3],
      ],
    );
    const dropped = events.filter((e) => e.event === "peer:dropped");
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.fields.peer, "stalled");
    // Dropped for a while: a new peers list does not reconnect it, but does connect the good one.
    mesh.onRelayFrame("peers", peersFrame(["stalled", "good"]));
    assert.equal(connects, 2);
    await new Promise((r) => setTimeout(r, 20));
    const got = await mesh.fetchPiece(
      { digest: "d0", size: 10, buildId: 3, index: 0 },
      AbortSignal.timeout(5_000),
    );
    assert.equal(got.from, "good");
    assert.deepEqual(got.bytes, bytes);
    assert.equal(good.fetched, 1);
  } finally {
    mesh.stop();
    for (const m of peers.values()) m.stop();
  }
});

Deno.test("Mesh: a relay busy with fallback asks is asked again after the peers, then as a plain fetch", async () => {
  const asks: (boolean | undefined)[] = [];
  let busyLeft = 0;
  const busyRelay = {
    name: "relay",
    fetchPiece: (_piece: unknown, _signal: AbortSignal, o?: { fallback?: boolean }) => {
      asks.push(o?.fallback);
      if (o?.fallback && busyLeft-- > 0) return Promise.reject(new RelayBusy("busy"));
      return Promise.resolve({ bytes: new Uint8Array(10), from: "relay" });
    },
  };
  const piece = { digest: "d".repeat(64), size: 10, buildId: 3, index: 0 };
  const signal = new AbortController().signal;
  const meshWith = (peers: boolean) =>
    new Mesh({
      machineId: "m1",
      relay: busyRelay,
      logger: silentLogger,
      peers,
      relayGraceMs: 0,
      relayBusyTries: 3,
      sendToRelay: () => true,
    });

  const mesh = meshWith(true);
  try {
    busyLeft = 2;
    assert.equal((await mesh.fetchPiece(piece, signal)).from, "relay");
    assert.deepEqual(asks, [true, true, true]); // refused twice, served the third time
    assert.equal(mesh.counts.relayBusy, 2);
    assert.equal(mesh.counts.relay, 1);

    asks.length = 0;
    busyLeft = 100;
    assert.equal((await mesh.fetchPiece(piece, signal)).from, "relay");
    assert.deepEqual(asks, [true, true, true, false]); // never left without the piece
  } finally {
    mesh.stop();
  }

  // Without a mesh the relay is the only source: never a fallback ask.
  const alone = meshWith(false);
  try {
    asks.length = 0;
    busyLeft = 100;
    await alone.fetchPiece(piece, signal);
    assert.deepEqual(asks, [false]);
  } finally {
    alone.stop();
  }
});

Deno.test("Mesh picks at most seedSlots of the chunks it seeds at once; the other slots go to peers", async () => {
  const key = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
  const eight = { ...start, sizes: new Array(8).fill(10), done: new Uint8Array(1) };
  // A peer holding chunks 4-7; the tracker asks this agent to seed 0-3 (nobody holds them).
  const holder = new Mesh({
    machineId: "good",
    relay,
    logger: silentLogger,
    sendToRelay: () => true,
  });
  holder.builds.add({ ...eight, done: new Uint8Array([0b1111_0000]) });
  const mesh = new Mesh({
    machineId: "m1",
    relay,
    logger: silentLogger,
    sendToRelay: () => true,
    seedSlots: 2,
    connect: () => {
      const [mine, theirs] = MemorySocket.pair();
      holder.accept(theirs as unknown as WebSocket, "m1");
      return mine as unknown as WebSocket;
    },
  });
  try {
    const tracking = mesh.begin(eight);
    // Past the first few random picks, so that every pick below follows the rules.
    mesh.builds.get(3)!.fetched = 10;
    mesh.onRelayFrame("peers", {
      type: "peers",
      build_id: 3,
      peer_key: key,
      seed: [0, 1, 2, 3],
      peers: [{ machine_id: "good", peer_url: "ws://good/v1/peer", ticket: "0".repeat(64) }],
    });
    await new Promise((r) => setTimeout(r, 20)); // the holder's have arrives
    const remaining = [0, 1, 2, 3, 4, 5, 6, 7];
    const pick = () => remaining.splice(tracking.pick(remaining), 1)[0]!;
    const seeds = [pick(), pick()];
    assert.ok(
      seeds.every((c) => c < 4),
      `seeds first: ${seeds}`,
    );
    // Two seeds in flight: the next picks come from the peer, not a third seed.
    const fromPeer = [pick(), pick()];
    assert.ok(
      fromPeer.every((c) => c >= 4),
      `peer's chunks while two seeds fly: ${fromPeer}`,
    );
    tracking.done(seeds[0]!);
    assert.ok(pick() < 4, "a seed slot freed: seeds come first again");
    tracking.end();
  } finally {
    mesh.stop();
    holder.stop();
  }
});
