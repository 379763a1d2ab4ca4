import assert from "node:assert/strict";
import { LOG_LIMITS } from "./log-batches.ts";
import { LogShipper } from "./log-shipper.ts";

interface Sent {
  seq: number;
  lines: readonly string[];
}

function recorder(opts: { delayMs?: number; fail?: (seq: number) => unknown } = {}) {
  const sent: Sent[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const send = async (seq: number, lines: readonly string[]) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      const err = opts.fail?.(seq);
      if (err) throw err;
      sent.push({ seq, lines: [...lines] });
    } finally {
      inFlight--;
    }
  };
  return { sent, send, maxInFlight: () => maxInFlight };
}

Deno.test("LogShipper numbers full batches 0, 1, 2… and sends them one at a time, in order", async () => {
  const r = recorder({ delayMs: 5 });
  const shipper = new LogShipper({
    send: r.send,
    onError: () => "drop",
    limits: { ...LOG_LIMITS, maxLines: 2 },
  });
  for (let i = 0; i < 5; i++) await shipper.write(`l${i}`);
  await shipper.flush();
  assert.deepEqual(r.sent, [
    { seq: 0, lines: ["l0", "l1"] },
    { seq: 1, lines: ["l2", "l3"] },
    { seq: 2, lines: ["l4"] },
  ]);
  assert.equal(r.maxInFlight(), 1);
  shipper.stop();
});

Deno.test("LogShipper sends an unfinished batch flushMs after its first line", async () => {
  const r = recorder();
  const shipper = new LogShipper({ send: r.send, onError: () => "drop", flushMs: 20 });
  await shipper.write("alone");
  assert.deepEqual(r.sent, []);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(r.sent, [{ seq: 0, lines: ["alone"] }]);
  shipper.stop();
});

Deno.test("LogShipper goes on with the next seq after a batch it had to drop", async () => {
  const r = recorder({ fail: (seq) => (seq === 0 ? new Error("refused") : undefined) });
  const dropped: number[] = [];
  const shipper = new LogShipper({
    send: r.send,
    onError: (_err, seq) => {
      dropped.push(seq);
      return "drop";
    },
    limits: { ...LOG_LIMITS, maxLines: 1 },
  });
  await shipper.write("a");
  await shipper.write("b");
  await shipper.flush();
  assert.deepEqual(dropped, [0]);
  assert.deepEqual(r.sent, [{ seq: 1, lines: ["b"] }]);
  shipper.stop();
});

Deno.test("LogShipper sends nothing more once told to stop", async () => {
  const r = recorder({ fail: (seq) => (seq === 0 ? new Error("409 lease_lost") : undefined) });
  const shipper = new LogShipper({
    send: r.send,
    onError: () => "stop",
    limits: { ...LOG_LIMITS, maxLines: 1 },
  });
  await shipper.write("a");
  await shipper.write("b");
  await shipper.write("c");
  await shipper.flush();
  assert.ok(shipper.stopped);
  assert.deepEqual(r.sent, []);
  assert.equal(shipper.seq, 1);
});

Deno.test("LogShipper.write() waits while too much is unsent (backpressure)", async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const sent: number[] = [];
  const shipper = new LogShipper({
    send: async (seq) => {
      await gate;
      sent.push(seq);
    },
    onError: () => "drop",
    maxPendingBytes: 100,
    limits: { ...LOG_LIMITS, maxLines: 1 },
  });
  let written = 0;
  const writer = (async () => {
    for (let i = 0; i < 20; i++) {
      await shipper.write("x".repeat(30));
      written++;
    }
  })();
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(written < 20, `the writer should be held back, wrote ${written}`);
  release();
  await writer;
  await shipper.flush();
  assert.equal(sent.length, 20);
  shipper.stop();
});

Deno.test("LogShipper still sends after its flush timer fired with nothing left to send", async () => {
  let release: () => void = () => {};
  let gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const sent: string[][] = [];
  const shipper = new LogShipper({
    send: async (_seq, lines) => {
      await gate;
      sent.push([...lines]);
    },
    onError: () => "drop",
    flushMs: 10,
  });
  await shipper.write("x");
  const first = shipper.flush(); // sends ["x"], held at the gate
  await shipper.write("y"); // arms the timer; the running flush takes "y" too
  release();
  await first;
  gate = Promise.resolve();
  await new Promise((r) => setTimeout(r, 40)); // the timer fires: nothing left to send
  await shipper.write("z");
  await shipper.flush();
  assert.deepEqual(sent, [["x"], ["y"], ["z"]]);
  shipper.stop();
});
