import { describe, expect, it } from "vitest";
import { retryWhileBusy } from "./busy-wait.ts";
import { SqlError } from "./errors.ts";

const busy = () => new SqlError("SQLITE_BUSY", "SQLITE_BUSY", "database is locked");

function fakeClock() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

describe("retryWhileBusy()", () => {
  it("retries plain SQLITE_BUSY with growing pauses until the operation succeeds", async () => {
    const clock = fakeClock();
    let attempts = 0;
    const result = await retryWhileBusy(
      () => {
        attempts++;
        if (attempts < 4) throw busy();
        return "done";
      },
      { timeoutMs: 1_000, ...clock },
    );
    expect(result).toBe("done");
    expect(clock.sleeps).toEqual([1, 2, 4]);
  });

  it("gives up at the timeout with SQLITE_BUSY that says how long it waited", async () => {
    const clock = fakeClock();
    const attempt = retryWhileBusy(
      () => {
        throw busy();
      },
      { timeoutMs: 100, ...clock },
    );
    await expect(attempt).rejects.toMatchObject({
      code: "SQLITE_BUSY",
      message: expect.stringMatching(/gave up after waiting \d+ ms/),
    });
    expect(clock.now()).toBeLessThanOrEqual(100);
  });

  it("does not retry other errors, nor SQLITE_BUSY_SNAPSHOT unless told to", async () => {
    const clock = fakeClock();
    const snapshot = new SqlError("SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "stale");
    const constraint = new SqlError("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_UNIQUE", "dup");
    for (const error of [snapshot, constraint, new TypeError("bug")]) {
      await expect(
        retryWhileBusy(
          () => {
            throw error;
          },
          { timeoutMs: 100, ...clock },
        ),
      ).rejects.toBe(error);
    }
    expect(clock.sleeps).toEqual([]);

    let attempts = 0;
    await retryWhileBusy(
      () => {
        if (attempts++ === 0) throw snapshot;
      },
      { timeoutMs: 100, retryable: () => true, ...clock },
    );
    expect(attempts).toBe(2);
  });
});
