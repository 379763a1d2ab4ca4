import assert from "node:assert/strict";
import {
  bytes,
  clip,
  colourEnabled,
  duration,
  paintWith,
  relativeTime,
  status,
  stripAnsi,
  table,
  visibleLength,
} from "./format.ts";

const NOW = Date.parse("2026-01-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

Deno.test("relativeTime() reads as a person would say it, past and future", () => {
  assert.equal(relativeTime(ago(2), NOW), "just now");
  assert.equal(relativeTime(ago(42), NOW), "42 s ago");
  assert.equal(relativeTime(ago(3 * 60 + 20), NOW), "3 min ago");
  assert.equal(relativeTime(ago(2 * 3600 + 5), NOW), "2 h ago");
  assert.equal(relativeTime(ago(86_400), NOW), "1 day ago");
  assert.equal(relativeTime(ago(5 * 86_400), NOW), "5 days ago");
  assert.equal(relativeTime(ago(-180), NOW), "in 3 min");
  assert.equal(relativeTime(null, NOW), "-");
  assert.equal(relativeTime("not a time", NOW), "not a time");
});

Deno.test("duration() between two times, or until now", () => {
  assert.equal(duration(ago(10), ago(9.15), NOW), "850 ms");
  assert.equal(duration(ago(42), null, NOW), "42 s");
  assert.equal(duration(ago(185), null, NOW), "3 min 5 s");
  assert.equal(duration(ago(180), null, NOW), "3 min");
  assert.equal(duration(ago(2 * 3600 + 4 * 60), null, NOW), "2 h 4 min");
  assert.equal(duration(null, null, NOW), "-");
});

Deno.test("bytes() in binary units", () => {
  assert.equal(bytes(0), "0 B");
  assert.equal(bytes(1023), "1023 B");
  assert.equal(bytes(1536), "1.5 KiB");
  assert.equal(bytes(17 * 1024 + 300), "17 KiB");
  assert.equal(bytes(10 * 1024 ** 3), "10 GiB");
  assert.equal(bytes(null), "-");
});

Deno.test("table() aligns columns by visible width, colours included", () => {
  const paint = paintWith(true);
  const text = table(
    ["ID", "STATUS", "REASON"],
    [
      ["1", status("SUCCEEDED", paint), ""],
      ["12", status("FAILED", paint), "build_error: exit 2"],
    ],
    paint,
  );
  const lines = stripAnsi(text).split("\n");
  assert.deepEqual(lines, [
    "ID  STATUS     REASON",
    "1   SUCCEEDED",
    "12  FAILED     build_error: exit 2",
    "",
  ]);
  assert.ok(text.includes("\x1b[32mSUCCEEDED\x1b[39m"), JSON.stringify(text));
});

Deno.test("table() without colour has no escape codes", () => {
  const text = table(["A", "B"], [["x", status("FAILED", paintWith(false))]], paintWith(false));
  assert.equal(text, "A  B\nx  FAILED\n");
});

Deno.test("colourEnabled() only on a terminal and only without NO_COLOR", () => {
  assert.equal(colourEnabled(true, undefined), true);
  assert.equal(colourEnabled(true, ""), false);
  assert.equal(colourEnabled(true, "1"), false);
  assert.equal(colourEnabled(false, undefined), false);
});

Deno.test("visibleLength() and clip()", () => {
  assert.equal(visibleLength("\x1b[1mbold\x1b[22m"), 4);
  assert.equal(clip("abcdef", 4), "abc…");
  assert.equal(clip("abc", 4), "abc");
});
