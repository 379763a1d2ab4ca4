import assert from "node:assert/strict";
import { pickPiece } from "./piece-picker.ts";

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
