import assert from "node:assert/strict";
import fc from "fast-check";
import { fromBase64 } from "../protocol/encoding.ts";
import {
  encodeHave,
  parseHave,
  peersMessageSchema,
  ticketValid,
} from "../protocol/peer-tracker.ts";
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

Deno.test("A have with want_peers: false is answered with the key and seeds, no peers", () => {
  const tracker = new Tracker({ peerUrl: url, maxSeeds: 2 });
  tracker.report("b", { buildId: 4, chunks: 8, bits: bits(8, [0, 1]) });
  tracker.peersFor("b", 4);
  const have = parseHave(JSON.parse(encodeHave(4, 8, bits(8, []), false)));
  assert.equal(have?.wantPeers, false);
  tracker.report("a", have!);
  const full = parseHave(JSON.parse(encodeHave(4, 8, bits(8, []))));
  assert.equal(full?.wantPeers, true);
  const quiet = tracker.peersFor("a", 4, { peers: have!.wantPeers });
  assert(peersMessageSchema.safeParse(quiet).success);
  assert.deepEqual(quiet.peers, []);
  assert.equal(quiet.seed.length, 2); // chunks nobody holds, still assigned
  assert(quiet.seed.every((i) => i >= 2));
  assert.equal(quiet.peer_key, tracker.peersFor("a", 4).peer_key); // the same session key
  assert.deepEqual(
    tracker.peersFor("a", 4).peers.map((p) => p.machine_id),
    ["b"],
  );
  assert.equal(
    parseHave({ type: "have", build_id: 4, chunks: 8, bitfield: "AA==", want_peers: "no" }),
    null,
  );
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

Deno.test("Tracker.holders() follows replaced reports, distrust and departures", () => {
  const tracker = new Tracker({ peerUrl: url });
  tracker.report("a", { buildId: 4, chunks: 16, bits: bits(16, [0, 1, 9]) });
  tracker.report("b", { buildId: 4, chunks: 16, bits: bits(16, [1]) });
  assert.deepEqual(
    [0, 1, 9].map((i) => tracker.holders(4, i)),
    [1, 2, 1],
  );
  tracker.report("a", { buildId: 4, chunks: 16, bits: bits(16, [1, 15]) }); // replaces a's
  assert.deepEqual(
    [0, 1, 9, 15].map((i) => tracker.holders(4, i)),
    [0, 2, 0, 1],
  );
  tracker.distrust("b");
  tracker.report("b", { buildId: 4, chunks: 16, bits: bits(16, [1, 2]) }); // still not counted
  assert.deepEqual(
    [1, 2].map((i) => tracker.holders(4, i)),
    [1, 0],
  );
  tracker.forget("a");
  assert.deepEqual(
    [1, 15].map((i) => tracker.holders(4, i)),
    [0, 0],
  );
});

Deno.test("Tracker.peersFor() ranks a bounded sample of a big swarm, still finding holders", () => {
  const n = 5_000;
  const tracker = new Tracker({ peerUrl: url, maxPeers: 12, sample: 96 });
  // One machine in fifty holds chunk 0; the rest hold nothing.
  for (let i = 0; i < n; i++) {
    const id = `m${i}`;
    tracker.report(id, { buildId: 5, chunks: 64, bits: bits(64, i % 50 === 0 ? [0] : []) });
    tracker.peersFor(id, 5);
  }
  let useful = 0;
  for (let k = 0; k < 50; k++) {
    const message = tracker.peersFor("m1", 5);
    assert.equal(message.peers.length, 12);
    assert.equal(new Set(message.peers.map((p) => p.machine_id)).size, 12);
    // A sample of 96 misses all 100 holders with probability (1 - 1/50)^96 ≈ 14%.
    if (Number(message.peers[0]!.machine_id.slice(1)) % 50 === 0) useful++;
  }
  assert.ok(useful >= 30, `a holder came first in only ${useful} of 50 answers`);
  assert.equal(tracker.holders(5, 0), n / 50);
});

Deno.test("Tracker seeds again the chunks whose only holder left, and none while all are held", () => {
  const tracker = new Tracker({ peerUrl: url, maxSeeds: 8 });
  tracker.report("a", { buildId: 5, chunks: 12, bits: bits(12, [0, 1, 2, 3, 4, 5]) });
  tracker.report("b", { buildId: 5, chunks: 12, bits: bits(12, [4, 5, 6, 7, 8, 9, 10, 11]) });
  tracker.report("c", { buildId: 5, chunks: 12, bits: bits(12, []) });
  assert.deepEqual(tracker.peersFor("c", 5).seed, []);
  tracker.forget("a");
  assert.deepEqual(tracker.peersFor("c", 5).seed.sort(), [0, 1, 2, 3]); // 4, 5: b holds them
});

Deno.test("Tracker.holders() equals a recount of the latest reports, and seeds go to one machine each", () => {
  const chunks = 20;
  const step = fc.record({
    machine: fc.constantFrom("a", "b", "c", "d"),
    op: fc.constantFrom("report", "report", "report", "forget", "distrust", "peers"),
    held: fc.uniqueArray(fc.integer({ min: 0, max: chunks - 1 })),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const tracker = new Tracker({ peerUrl: url, maxSeeds: 3, now: () => 0 });
      const latest = new Map<string, number[]>();
      const distrusted = new Set<string>();
      /** chunk → the machine last told to seed it. */
      const seededBy = new Map<number, string>();
      for (const s of steps) {
        if (s.op === "peers") {
          if (!latest.has(s.machine)) continue;
          for (const chunk of tracker.peersFor(s.machine, 1).seed) {
            // Only a chunk nobody holds, and to one machine at a time.
            assert.equal(tracker.holders(1, chunk), 0, `seeded chunk ${chunk} is held`);
            const other = seededBy.get(chunk);
            assert.ok(other === undefined || other === s.machine || !latest.has(other));
            seededBy.set(chunk, s.machine);
          }
          for (const [chunk] of seededBy) if (tracker.holders(1, chunk) > 0) seededBy.delete(chunk);
        } else if (s.op === "report") {
          tracker.report(s.machine, { buildId: 1, chunks, bits: bits(chunks, s.held) });
          latest.set(s.machine, s.held);
        } else if (s.op === "forget") {
          tracker.forget(s.machine);
          latest.delete(s.machine);
        } else {
          tracker.distrust(s.machine);
          distrusted.add(s.machine);
        }
      }
      for (let i = 0; i < chunks; i++) {
        let expected = 0;
        for (const [m, held] of latest) if (!distrusted.has(m) && held.includes(i)) expected++;
        assert.equal(tracker.holders(1, i), expected, `chunk ${i}`);
      }
    }),
  );
});

Deno.test("Tracker ignores a have's bits past its last chunk, even once the counts grow", () => {
  const tracker = new Tracker({ peerUrl: url });
  const padded = bits(16, [0, 5, 6, 7, 12]); // 5..7 are past chunk 4
  tracker.report("a", { buildId: 1, chunks: 5, bits: padded.subarray(0, 1) });
  tracker.report("a", { buildId: 1, chunks: 5, bits: padded }); // a byte too many
  tracker.report("b", { buildId: 1, chunks: 16, bits: bits(16, [1]) }); // the counts grow
  tracker.report("a", { buildId: 1, chunks: 5, bits: bits(8, [0]) });
  assert.deepEqual(
    [0, 1, 5, 6, 7, 12].map((i) => tracker.holders(1, i)),
    [1, 1, 0, 0, 0, 0],
  );
});
