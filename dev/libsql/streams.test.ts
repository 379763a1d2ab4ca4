import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SqlConnection } from "./connection.ts";
import { StreamRegistry } from "./streams.ts";

function fakeConnection(): SqlConnection & { closed: boolean; inTransaction: boolean } {
  return {
    closed: false,
    inTransaction: false,
    get isAutocommit() {
      return !this.inTransaction;
    },
    execute: () => Promise.reject(new Error("not used")),
    describe: () => {
      throw new Error("not used");
    },
    close() {
      this.closed = true;
    },
  };
}

describe("StreamRegistry", () => {
  let connections: ReturnType<typeof fakeConnection>[];
  let expired: { streamId: number; hadTransaction: boolean }[];
  let registry: StreamRegistry;

  beforeEach(() => {
    vi.useFakeTimers();
    connections = [];
    expired = [];
    registry = new StreamRegistry({
      openConnection: () => {
        const conn = fakeConnection();
        connections.push(conn);
        return conn;
      },
      idleTimeoutMs: 1_000,
      maxStreams: 2,
      onExpired: (event) => expired.push(event),
    });
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("acquire() hands the same stream back for each new baton, and each baton works once", () => {
    const stream = registry.acquire(null);
    const first = registry.release(stream);
    expect(registry.acquire(first)).toBe(stream);
    const second = registry.release(stream);
    expect(second).not.toBe(first);
    expect(() => registry.acquire(first)).toThrow(
      expect.objectContaining({ code: "BATON_REUSED" }),
    );
    expect(() => registry.acquire("forged")).toThrow(
      expect.objectContaining({ code: "BATON_INVALID" }),
    );
  });

  it("an idle stream expires: its connection closes and its baton reports STREAM_EXPIRED", () => {
    const stream = registry.acquire(null);
    const conn = connections[0];
    if (conn) conn.inTransaction = true;
    const baton = registry.release(stream);
    vi.advanceTimersByTime(999);
    expect(conn?.closed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(conn?.closed).toBe(true);
    expect(expired).toEqual([{ streamId: stream.id, hadTransaction: true }]);
    expect(registry.size).toBe(0);
    expect(() => registry.acquire(baton)).toThrow(
      expect.objectContaining({ code: "STREAM_EXPIRED" }),
    );
  });

  it("a stream in use never expires; the timer starts when it is released", () => {
    const stream = registry.acquire(registry.release(registry.acquire(null)));
    vi.advanceTimersByTime(5_000);
    expect(connections[0]?.closed).toBe(false);
    registry.release(stream);
    vi.advanceTimersByTime(1_000);
    expect(connections[0]?.closed).toBe(true);
  });

  it("close() ends the stream and its last baton reports STREAM_CLOSED", () => {
    const stream = registry.acquire(null);
    const baton = registry.release(stream);
    registry.close(registry.acquire(baton));
    expect(registry.size).toBe(0);
    expect(() => registry.acquire(baton)).toThrow(
      expect.objectContaining({ code: "STREAM_CLOSED" }),
    );
  });

  it("a stream closed with no transaction open hands its connection to the next new stream", () => {
    const first = registry.acquire(null);
    registry.close(first);
    expect(connections[0]?.closed).toBe(false);
    const second = registry.acquire(null);
    expect(second.conn).toBe(connections[0]);
    expect(second.id).not.toBe(first.id);
    expect(second.sqlTexts.size).toBe(0);
    expect(connections).toHaveLength(1);
  });

  it("a connection is not reused when closed inside a transaction, or after a failed request", () => {
    const inTxn = registry.acquire(null);
    connections[0]!.inTransaction = true;
    registry.close(inTxn);
    expect(connections[0]?.closed).toBe(true);
    const failed = registry.acquire(null);
    registry.close(failed, false);
    expect(connections[1]?.closed).toBe(true);
    registry.acquire(null);
    expect(connections).toHaveLength(3);
  });

  it("limits open streams, and closeAll() closes every connection", () => {
    registry.release(registry.acquire(null));
    registry.acquire(null);
    expect(() => registry.acquire(null)).toThrow(
      expect.objectContaining({ code: "TOO_MANY_STREAMS" }),
    );
    registry.closeAll();
    expect(connections.map((c) => c.closed)).toEqual([true, true]);
    // Pooled connections too.
    registry.close(registry.acquire(null));
    registry.closeAll();
    expect(connections.every((c) => c.closed)).toBe(true);
    expect(registry.size).toBe(0);
  });
});
