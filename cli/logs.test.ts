import assert from "node:assert/strict";
import { harness, json } from "./test-harness.ts";

const line = (seq: number, text: string) => ({
  attempt: 1,
  seq,
  ts: "2026-01-01T12:00:05Z",
  line: text,
});
const ndjson = (values: unknown[]) =>
  new Response(values.map((v) => `${JSON.stringify(v)}\n`).join(""), {
    headers: { "Content-Type": "application/x-ndjson" },
  });
const strip = (s: string) => s.replace(/#1 \d\d:\d\d:\d\d {2}/g, "");

Deno.test("logs reads every page and prints each line with its attempt and time", async () => {
  const h = harness((req) => {
    const after = new URL(req.url).searchParams.get("after");
    if (after === null)
      return json({
        build_id: 5,
        status: "SUCCEEDED",
        lines: [line(0, "a"), line(0, "b")],
        next_cursor: "1:0",
      });
    if (after === "1:0")
      return json({ build_id: 5, status: "SUCCEEDED", lines: [line(1, "c")], next_cursor: "1:1" });
    return json({ build_id: 5, status: "SUCCEEDED", lines: [], next_cursor: "1:1" });
  });
  assert.equal(await h.run("logs", "5"), 0, h.stderr());
  assert.match(h.stdout(), /^#1 \d\d:\d\d:\d\d {2}a\n/);
  assert.equal(strip(h.stdout()), "a\nb\nc\n");
  assert.deepEqual(
    h.requests.map((r) => r.path),
    ["/v1/builds/5/logs", "/v1/builds/5/logs?after=1%3A0", "/v1/builds/5/logs?after=1%3A1"],
  );
});

Deno.test("logs of a FAILED build prints the log, then exits 1 with the reason", async () => {
  const h = harness((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/builds/5")
      return json({
        id: 5,
        status: "FAILED",
        failure_reason: "timeout",
        failure_message: "ran over 20 min",
      });
    return json({
      build_id: 5,
      status: "FAILED",
      lines: req.url.includes("after") ? [] : [line(0, "x")],
      next_cursor: "1:0",
    });
  });
  assert.equal(await h.run("logs", "5"), 1);
  assert.equal(strip(h.stdout()), "x\n");
  assert.equal(h.stderr(), "error timeout: build 5 failed: ran over 20 min\n");
});

Deno.test("logs --json prints one object with every line", async () => {
  const h = harness((req) =>
    json({
      build_id: 5,
      status: "RUNNING",
      lines: req.url.includes("after") ? [] : [line(0, "x")],
      next_cursor: "1:0",
    }),
  );
  assert.equal(await h.run("logs", "5", "--json"), 0);
  assert.deepEqual(JSON.parse(h.stdout()), {
    build_id: 5,
    status: "RUNNING",
    lines: [line(0, "x")],
    next_cursor: "1:0",
  });
});

Deno.test("logs -f follows, reconnects where the server asks and after a cut, and ends with the build", async () => {
  const streams = [
    () => ndjson([line(0, "one"), { end: false, reconnect_after: "1:0" }]),
    // Cut off in the middle of chunk 2: no end line.
    () => ndjson([line(1, "two"), line(2, "three")]),
    // Resumed after chunk 1 (the last one complete): chunk 2's first line again, then the rest.
    () =>
      ndjson([
        line(2, "three"),
        line(2, "four"),
        line(3, "five"),
        { end: true, status: "SUCCEEDED", failure_reason: null, failure_message: null },
      ]),
  ];
  let i = 0;
  const h = harness(() => streams[i++]!());
  assert.equal(await h.run("logs", "5", "-f"), 0, h.stderr());
  assert.equal(strip(h.stdout()), "one\ntwo\nthree\nfour\nfive\n-- build 5 SUCCEEDED\n");
  assert.deepEqual(
    h.requests.map((r) => r.path),
    [
      "/v1/builds/5/logs?follow=1",
      "/v1/builds/5/logs?follow=1&after=1%3A0",
      "/v1/builds/5/logs?follow=1&after=1%3A1",
    ],
  );
});

Deno.test("logs -f exits 1 when the build ends FAILED; --json passes the NDJSON through", async () => {
  const end = {
    end: true,
    status: "FAILED",
    failure_reason: "build_error",
    failure_message: "exit 2",
  };
  const h = harness(() => ndjson([line(0, "oops"), end]));
  assert.equal(await h.run("logs", "5", "-f", "--json"), 1);
  assert.deepEqual(
    h
      .stdout()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l)),
    [line(0, "oops"), end],
  );
  assert.equal(h.stderr(), "error build_error: build 5 failed: exit 2\n");
});

Deno.test("logs -f gives up with exit 4 when the stream keeps breaking off", async () => {
  const h = harness(() => ndjson([]));
  assert.equal(await h.run("logs", "5", "-f"), 4);
  assert.match(h.stderr(), /^error stream_ended: /);
  assert.equal(h.requests.length, 6);
});
