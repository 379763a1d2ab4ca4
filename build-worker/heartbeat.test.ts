// deno-lint-ignore-file require-await -- fakes and callbacks implement async contracts without awaiting
import assert from "node:assert/strict";
import { ApiError, TransportError } from "./api.ts";
import { startHeartbeat } from "./heartbeat.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("startHeartbeat() beats every intervalMs until stopped", async () => {
  let beats = 0;
  const hb = startHeartbeat({
    intervalMs: 10,
    beat: async () => void beats++,
    onLost: () => assert.fail("not lost"),
    onError: () => assert.fail("no error"),
  });
  await wait(75);
  await hb.stop();
  const after = beats;
  assert.ok(after >= 3, `beats: ${after}`);
  await wait(30);
  assert.equal(beats, after);
});

Deno.test("startHeartbeat() reports a 409 as lost and beats no more", async () => {
  let beats = 0;
  const lost: string[] = [];
  const hb = startHeartbeat({
    intervalMs: 5,
    beat: async () => {
      beats++;
      throw new ApiError(409, "build_canceled", "canceled");
    },
    onLost: (r) => void lost.push(r.code),
    onError: () => assert.fail("a 409 is not an error to retry"),
  });
  await wait(50);
  await hb.stop();
  assert.deepEqual(lost, ["build_canceled"]);
  assert.equal(beats, 1);
});

Deno.test("startHeartbeat() tries again sooner after a failed beat", async () => {
  const times: number[] = [];
  const errors: unknown[] = [];
  const hb = startHeartbeat({
    intervalMs: 200,
    retryMs: 5,
    beat: async () => {
      times.push(Date.now());
      if (times.length === 1) throw new TransportError("connection refused");
    },
    onLost: () => assert.fail("not lost"),
    onError: (err) => void errors.push(err),
  });
  await wait(260);
  await hb.stop();
  assert.equal(errors.length, 1);
  assert.ok(times.length >= 2);
  assert.ok(times[1]! - times[0]! < 100, "the retry comes before the next interval");
});
