import assert from "node:assert/strict";
import fc from "fast-check";
import { pickFromPeers, pickPiece } from "./piece-picker.ts";

/** A `have` bitfield of `chunks` holding `held`. */
function bitfield(chunks: number, held: readonly number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(chunks / 8));
  for (const i of held) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

Deno.test("pickPiece() takes the rarest chunk some peer holds, after a few random ones", () => {
  const holders = (i: number) => [0, 3, 1, 2][i]!;
  const remaining = [0, 1, 2, 3];
  assert.equal(remaining[pickPiece(remaining, { fetched: 4, holders })], 2);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(pickPiece(remaining, { fetched: 0, holders }));
  assert.deepEqual([...seen].sort(), [1, 2, 3]); // random among those some peer holds
});

Deno.test("pickPiece() takes a chunk the tracker asked it to seed before any other", () => {
  const picked = pickPiece([4, 5, 6], { fetched: 9, holders: () => 1, seeded: (i) => i === 6 });
  assert.equal(picked, 2);
});

Deno.test("pickPiece() falls back to a random chunk nobody holds", () => {
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(pickPiece([5, 6, 7], { fetched: 9, holders: () => 0 }));
  assert.equal(seen.size, 3);
});

Deno.test("pickFromPeers() asks the first peer holding something needed for its rarest chunk", () => {
  const held: Record<string, number[]> = { idle: [], busy: [1, 2, 3], other: [0, 1] };
  const holders = (i: number) => [1, 2, 1, 3][i]!; // chunk 2 is the rarest "busy" holds
  const has = (peer: string) => bitfield(4, held[peer]!);
  const got = pickFromPeers([0, 1, 2, 3], ["idle", "busy", "other"], has, { fetched: 9, holders });
  assert.deepEqual(got, { at: 2, peer: "busy" });
  // Only the first `tries` peers are looked at.
  assert.equal(
    pickFromPeers([0], ["idle", "busy", "other"], has, { fetched: 9, holders, tries: 2 }),
    null,
  );
  assert.deepEqual(pickFromPeers([0], ["idle", "busy", "other"], has, { fetched: 9, holders }), {
    at: 0,
    peer: "other",
  });
});

Deno.test("pickFromPeers() leaves chunks to seed to pickPiece, and random first picks stay among the peer's", () => {
  const has = () => bitfield(4, [1, 2, 3]);
  const seeded = (i: number) => i === 0;
  assert.equal(pickFromPeers([0, 1], ["p"], has, { fetched: 9, holders: () => 1, seeded }), null);
  const seen = new Set<number>();
  for (let n = 0; n < 200; n++) {
    seen.add(pickFromPeers([0, 1, 2, 3], ["p"], has, { fetched: 0, holders: () => 1 })!.at);
  }
  assert.deepEqual([...seen].sort(), [1, 2, 3]);
});

Deno.test("pickFromPeers() takes the rarest chunk the peer holds, as a scan of every chunk would", () => {
  const instance = fc.integer({ min: 1, max: 70 }).chain((chunks) =>
    fc.record({
      chunks: fc.constant(chunks),
      remaining: fc.shuffledSubarray(
        Array.from({ length: chunks }, (_, i) => i),
        { minLength: 1 },
      ),
      peers: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: chunks - 1 })), {
        minLength: 1,
        maxLength: 4,
      }),
      holders: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: chunks, maxLength: chunks }),
      seeded: fc.uniqueArray(fc.integer({ min: 0, max: chunks - 1 }), { maxLength: 2 }),
      fetched: fc.integer({ min: 0, max: 6 }),
    }),
  );
  fc.assert(
    fc.property(instance, (t) => {
      const seeds = new Set(t.seeded);
      const o = {
        fetched: t.fetched,
        holders: (i: number) => t.holders[i]!,
        ...(seeds.size > 0 ? { seeded: (i: number) => seeds.has(i) } : {}),
      };
      const peers = t.peers.map((_, p) => p);
      const got = pickFromPeers(t.remaining, peers, (p) => bitfield(t.chunks, t.peers[p]!), o);
      // By brute force: null while a chunk to seed is left; else the first of the first three
      // peers that holds a remaining chunk, and a chunk among its best.
      if (t.remaining.some((c) => seeds.has(c))) return assert.equal(got, null);
      const first = peers.slice(0, 3).find((p) => t.remaining.some((c) => t.peers[p]!.includes(c)));
      if (first === undefined) return assert.equal(got, null);
      assert.ok(got);
      assert.equal(got.peer, first);
      const theirs = t.remaining.filter((c) => t.peers[first]!.includes(c));
      const score = (c: number) => t.holders[c]! || Number.MAX_SAFE_INTEGER;
      const chunk = t.remaining[got.at]!;
      assert.ok(theirs.includes(chunk));
      const reachable = theirs.filter((c) => score(c) < Number.MAX_SAFE_INTEGER);
      if (t.fetched < 4 && reachable.length > 0) assert.ok(reachable.includes(chunk));
      else assert.equal(score(chunk), Math.min(...theirs.map(score)));
    }),
  );
});

Deno.test("pickFromPeers() uses the caller's lacking bitfield and positions when given", () => {
  const remaining = [9, 3, 12];
  const at = new Int32Array(16);
  at[9] = 0;
  at[3] = 1;
  at[12] = 2;
  const lacking = { bits: bitfield(16, remaining), at };
  const got = pickFromPeers(remaining, ["p"], () => bitfield(16, [3, 4, 5]), {
    fetched: 9,
    holders: () => 1,
    lacking,
  });
  assert.deepEqual(got, { at: 1, peer: "p" });
});

Deno.test("pickFromPeers() finds a peer's chunks in builds of any size, one after another", () => {
  // Builds of 300, 500 and 2,000 chunks, in an order that regrows the scratch space.
  for (const chunks of [300, 500, 257, 2000, 400]) {
    const remaining = Array.from({ length: chunks }, (_, i) => i);
    const last = chunks - 1;
    const got = pickFromPeers(remaining, ["p"], () => bitfield(chunks, [last]), {
      fetched: 9,
      holders: () => 1,
    });
    assert.deepEqual(got, { at: last, peer: "p" }, `${chunks} chunks`);
  }
});
