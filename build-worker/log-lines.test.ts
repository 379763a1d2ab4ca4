import assert from "node:assert/strict";
import { LineSplitter, readLines } from "./log-lines.ts";

function streamOf(...pieces: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(pieces.map((p) => (typeof p === "string" ? encoder.encode(p) : p)));
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of readLines(stream)) lines.push(line);
  return lines;
}

Deno.test("readLines() splits on newlines across pieces and keeps a last unfinished line", async () => {
  assert.deepEqual(await collect(streamOf("one\ntw", "o\r\n\nthr", "ee")), [
    "one",
    "two",
    "",
    "three",
  ]);
});

Deno.test("readLines() decodes a character split across pieces", async () => {
  const bytes = new TextEncoder().encode("é\n");
  assert.deepEqual(await collect(streamOf(bytes.subarray(0, 1), bytes.subarray(1))), ["é"]);
});

Deno.test("readLines() replaces invalid UTF-8 instead of failing", async () => {
  assert.deepEqual(await collect(streamOf(new Uint8Array([0x61, 0xff, 0x0a]))), ["a\ufffd"]);
});

Deno.test("readLines() stops and cancels the stream when its signal aborts", async () => {
  let canceled = false;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode("first\n"));
    },
    cancel() {
      canceled = true;
    },
  });
  const controller = new AbortController();
  const lines: string[] = [];
  const done = (async () => {
    for await (const line of readLines(stream, controller.signal)) lines.push(line);
  })();
  await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await done;
  assert.deepEqual(lines, ["first"]);
  assert.ok(canceled);
});

Deno.test("LineSplitter.end() yields nothing when the text ended with a newline", () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push("a\nb\n"), ["a", "b"]);
  assert.deepEqual(splitter.end(), []);
});
