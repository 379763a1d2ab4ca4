import assert from "node:assert/strict";
import { pickFromPeers, pickPiece } from "./piece-picker.ts";

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
  const has = (peer: string, i: number) => held[peer]!.includes(i);
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
  const has = (_peer: string, i: number) => i !== 0;
  const seeded = (i: number) => i === 0;
  assert.equal(pickFromPeers([0, 1], ["p"], has, { fetched: 9, holders: () => 1, seeded }), null);
  const seen = new Set<number>();
  for (let n = 0; n < 200; n++) {
    seen.add(pickFromPeers([0, 1, 2, 3], ["p"], has, { fetched: 0, holders: () => 1 })!.at);
  }
  assert.deepEqual([...seen].sort(), [1, 2, 3]);
});
