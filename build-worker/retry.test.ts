// deno-lint-ignore-file require-await -- fakes and callbacks implement async contracts without awaiting
import assert from "node:assert/strict";
import { abortableSleep, backoffDelay, retry } from "./retry.ts";

const noSleep = async () => {};

Deno.test("retry() calls again until the call succeeds", async () => {
  const delays: number[] = [];
  let calls = 0;
  const result = await retry(
    async (attempt) => {
      calls++;
      if (attempt < 3) throw new Error(`fail ${attempt}`);
      return "ok";
    },
    { random: () => 0.5, sleep: async (ms) => void delays.push(ms) },
  );
  assert.equal(result, "ok");
  assert.equal(calls, 3);
  assert.deepEqual(delays, [500, 1000]);
});

Deno.test("retry() gives up after `attempts` calls with the last error", async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      async (attempt) => {
        calls++;
        throw new Error(`fail ${attempt}`);
      },
      { attempts: 3, sleep: noSleep },
    ),
    /fail 3/,
  );
  assert.equal(calls, 3);
});

Deno.test("retry() does not call again after an error that is not retryable", async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new TypeError("bad request");
      },
      { retryable: (err) => !(err instanceof TypeError), sleep: noSleep },
    ),
    TypeError,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() tells onRetry about each retry", async () => {
  const seen: [number, number][] = [];
  await retry(
    async (attempt) => {
      if (attempt === 1) throw new Error("once");
    },
    { random: () => 0, sleep: noSleep, onRetry: (i) => void seen.push([i.attempt, i.delayMs]) },
  );
  assert.deepEqual(seen, [[1, 375]]);
});

Deno.test("retry() stops waiting when its signal aborts", async () => {
  const controller = new AbortController();
  const started = Date.now();
  const pending = retry(
    async () => {
      throw new Error("down");
    },
    { baseMs: 60_000, signal: controller.signal },
  );
  setTimeout(() => controller.abort(new Error("stopped")), 20);
  await assert.rejects(pending, /stopped/);
  assert.ok(Date.now() - started < 5_000);
});

Deno.test("backoffDelay() doubles per retry, is capped, and jitters by ±25%", () => {
  const timing = { baseMs: 100, maxMs: 1_000 };
  assert.equal(backoffDelay(1, { ...timing, random: () => 0.5 }), 100);
  assert.equal(backoffDelay(3, { ...timing, random: () => 0.5 }), 400);
  assert.equal(backoffDelay(10, { ...timing, random: () => 0.5 }), 1_000);
  assert.equal(backoffDelay(1, { ...timing, random: () => 0 }), 75);
  assert.equal(backoffDelay(1, { ...timing, random: () => 0.999999 }), 125);
});

Deno.test("abortableSleep() rejects at once on an aborted signal", async () => {
  await assert.rejects(abortableSleep(10_000, AbortSignal.abort(new Error("gone"))), /gone/);
});
