import assert from "node:assert/strict";
import { fromBase64 } from "../protocol/encoding.ts";
import { parseHave, peersMessageSchema, ticketValid } from "../protocol/peer-tracker.ts";
import { Tracker } from "./tracker.ts";

const url = (id: string) => `ws://127.0.0.1:1/${id}`;

function bits(n: number, held: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(n / 8));
  for (const i of held) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

Deno.test("Tracker.peersFor() lists peers holding what the machine lacks first, bounded", () => {
  const tracker = new Tracker({ peerUrl: url, maxPeers: 2 });
  tracker.report("a", { buildId: 7, chunks: 16, bits: bits(16, [0, 1, 2]) });
  tracker.report("b", { buildId: 7, chunks: 16, bits: bits(16, [0, 1, 2]) }); // nothing new for a
  tracker.report("c", { buildId: 7, chunks: 16, bits: bits(16, [9]) });
  tracker.report("d", { buildId: 7, chunks: 16, bits: bits(16, [0]) });
  for (const id of ["b", "c", "d"]) tracker.peersFor(id, 7); // each gets a key
  for (let i = 0; i < 20; i++) {
    const message = tracker.peersFor("a", 7);
    assert(peersMessageSchema.safeParse(message).success);
    assert.deepEqual(message.peers.length, 2);
    assert.deepEqual(message.peers[0]!.machine_id, "c");
  }
  assert.deepEqual(tracker.holders(7, 0), 3);
});

Deno.test("Tracker tickets verify under the peer's key and only for the requester", () => {
  const tracker = new Tracker({ peerUrl: url });
  tracker.report("a", { buildId: 1, chunks: 8, bits: bits(8, []) });
  tracker.report("b", { buildId: 1, chunks: 8, bits: bits(8, [1]) });
  const forB = tracker.peersFor("b", 1);
  const forA = tracker.peersFor("a", 1);
  const keyB = fromBase64(forB.peer_key);
  const ticket = forA.peers[0]!.ticket;
  assert(ticketValid(keyB, "a", ticket));
  assert(!ticketValid(keyB, "x", ticket));
  tracker.forget("b");
  assert.deepEqual(tracker.peersFor("a", 1).peers, []);
});

Deno.test("parseHave() refuses a bitfield of the wrong size", () => {
  assert.deepEqual(parseHave({ type: "have", build_id: 1, chunks: 20, bitfield: "AA==" }), null);
  assert.deepEqual(
    parseHave({ type: "have", build_id: 1, chunks: 8, bitfield: "AQ==" })?.chunks,
    8,
  );
});

Deno.test("Tracker assigns each chunk nobody holds to one agent at a time to seed", () => {
  let now = 0;
  const tracker = new Tracker({ peerUrl: url, maxSeeds: 3, seedTtlMs: 1000, now: () => now });
  tracker.report("a", { buildId: 2, chunks: 8, bits: bits(8, [0]) });
  tracker.report("b", { buildId: 2, chunks: 8, bits: bits(8, []) });
  const seedA = tracker.peersFor("a", 2).seed;
  const seedB = tracker.peersFor("b", 2).seed;
  assert.equal(seedA.length, 3);
  assert.equal(seedB.length, 3);
  const all = [...seedA, ...seedB];
  assert.equal(new Set(all).size, 6);
  assert.ok(!all.includes(0)); // a holds it
  assert.deepEqual(tracker.peersFor("a", 2).seed.sort(), seedA.sort()); // kept while pending
  now = 2000; // expired: handed out again
  assert.equal(tracker.peersFor("b", 2).seed.length, 3);
});

Deno.test("Tracker.distrust() leaves a reported peer out of lists and of seed decisions", () => {
  const tracker = new Tracker({ peerUrl: url, maxSeeds: 8 });
  tracker.report("a", { buildId: 3, chunks: 8, bits: bits(8, []) });
  tracker.report("bad", { buildId: 3, chunks: 8, bits: bits(8, [0, 1, 2, 3, 4, 5, 6, 7]) });
  tracker.peersFor("bad", 3);
  assert.equal(tracker.peersFor("a", 3).seed.length, 0); // bad holds everything
  tracker.distrust("bad");
  const message = tracker.peersFor("a", 3);
  assert.deepEqual(message.peers, []);
  assert.equal(message.seed.length, 8);
});
