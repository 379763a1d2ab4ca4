import assert from "node:assert/strict";
import { capLine, jsonLineBytes, LOG_LIMITS, LogBatcher } from "./log-batches.ts";

function drain(batcher: LogBatcher): string[][] {
  const batches: string[][] = [];
  for (let b = batcher.take(true); b; b = batcher.take(true)) batches.push(b);
  return batches;
}

Deno.test("LogBatcher keeps at most maxLines lines per batch", () => {
  const batcher = new LogBatcher({ ...LOG_LIMITS, maxLines: 3 });
  for (let i = 0; i < 7; i++) batcher.add(`line ${i}`);
  assert.ok(batcher.hasFullBatch);
  assert.deepEqual(drain(batcher), [
    ["line 0", "line 1", "line 2"],
    ["line 3", "line 4", "line 5"],
    ["line 6"],
  ]);
  assert.ok(batcher.isEmpty);
  assert.equal(batcher.pendingBytes, 0);
});

Deno.test("LogBatcher keeps each batch's JSON within maxBytes", () => {
  const limits = { ...LOG_LIMITS, maxBytes: 50 };
  const batcher = new LogBatcher(limits);
  const lines = ["a".repeat(20), "b".repeat(20), 'quote " and \u0001 escaped', "c"];
  for (const line of lines) batcher.add(line);
  const batches = drain(batcher);
  assert.deepEqual(batches.flat(), lines);
  for (const batch of batches) {
    // What the API receives: a JSON array of the lines.
    assert.ok(new TextEncoder().encode(JSON.stringify(batch)).byteLength <= limits.maxBytes + 1);
  }
  assert.deepEqual(
    batches.map((b) => b.length),
    [2, 2],
  );
});

Deno.test("LogBatcher's default batches stay under the API's 256 KiB body limit", () => {
  const batcher = new LogBatcher();
  // Worst case per character: a control character is six bytes of JSON.
  for (let i = 0; i < 50; i++) batcher.add("\u0001".repeat(16_384));
  for (const batch of drain(batcher)) {
    const body = JSON.stringify({ lease_token: "0".repeat(32), seq: 1e12, lines: batch });
    assert.ok(new TextEncoder().encode(body).byteLength < 256 * 1024);
    assert.ok(batch.length <= 1000);
  }
});

Deno.test("LogBatcher cuts a line longer than maxLineChars into several", () => {
  const batcher = new LogBatcher();
  batcher.add("x".repeat(40_000));
  const lines = drain(batcher).flat();
  assert.deepEqual(
    lines.map((l) => l.length),
    [16_384, 16_384, 40_000 - 2 * 16_384],
  );
});

Deno.test("LogBatcher.take(false) hands out only full batches", () => {
  const batcher = new LogBatcher({ ...LOG_LIMITS, maxLines: 2 });
  batcher.add("one");
  assert.equal(batcher.take(false), undefined);
  batcher.add("two");
  batcher.add("three");
  assert.deepEqual(batcher.take(false), ["one", "two"]);
  assert.equal(batcher.take(false), undefined);
  assert.deepEqual(batcher.take(true), ["three"]);
});

Deno.test("capLine() never splits a surrogate pair", () => {
  const pieces = capLine(`ab${"😀".repeat(3)}`, 3);
  assert.equal(pieces.join(""), `ab${"😀".repeat(3)}`);
  for (const piece of pieces) {
    assert.ok(piece.length <= 3);
    assert.equal(piece, new TextDecoder().decode(new TextEncoder().encode(piece)));
  }
});

Deno.test("jsonLineBytes() counts UTF-8 bytes of the escaped string and a separator", () => {
  assert.equal(jsonLineBytes("abc"), 6);
  assert.equal(jsonLineBytes("é"), 5);
  assert.equal(jsonLineBytes('"'), 5);
});
