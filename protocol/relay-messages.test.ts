import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AppStatus,
  decodeRelayMessage,
  encodeRelayMessage,
  MAX_APPS_PER_MACHINE,
  MAX_RELAY_MESSAGE_BYTES,
  type RelayMessage,
} from "./relay-messages.ts";

const SIG = `${"A".repeat(86)}==`;

const app = (name: string, over: Partial<AppStatus> = {}): AppStatus => ({
  app: name,
  build_id: 7,
  generation: 3,
  state: "downloading",
  detail: "12/40 chunks",
  running_build_id: 6,
  progress: { chunks_done: 12, chunks_total: 40, bytes_done: 1200, bytes_total: 4000 },
  ...over,
});

const hello: RelayMessage = {
  type: "hello",
  protocol: 1,
  machine_id: "m-1.us-east",
  region: "us-east",
  peer_url: null,
  apps: [app("web"), app("api", { state: "healthy", progress: null, detail: null })],
};

const goals: RelayMessage = {
  type: "goals",
  version: 12,
  goals: [{ document: '{"version":1}', signature: SIG }],
};

describe("relay messages", () => {
  it("encodeRelayMessage() and decodeRelayMessage() round-trip every kind", () => {
    const fromAgent: RelayMessage[] = [
      hello,
      { type: "status", apps: [app("web", { state: "failed", detail: "health check failed" })] },
      { type: "ping", nonce: 1 },
      { type: "pong", nonce: 1 },
      { type: "error", code: "bad_region", message: "wrong region" },
    ];
    for (const message of fromAgent) {
      expect(decodeRelayMessage(encodeRelayMessage(message), "agent")).toEqual({
        kind: "message",
        message,
      });
    }
    const fromRelay: RelayMessage[] = [
      goals,
      { type: "welcome", protocol: 1, relay_id: "relay-a", region: "us-east" },
    ];
    for (const message of fromRelay) {
      const bytes = new TextEncoder().encode(encodeRelayMessage(message));
      expect(decodeRelayMessage(bytes, "relay")).toEqual({ kind: "message", message });
      expect(decodeRelayMessage(bytes.buffer as ArrayBuffer, "relay")).toEqual({
        kind: "message",
        message,
      });
    }
  });

  it("decodeRelayMessage() round-trips arbitrary valid statuses (property)", () => {
    const state = fc.constantFrom("pending", "downloading", "installed", "healthy", "failed");
    const status = fc.record({
      app: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/),
      build_id: fc.option(fc.integer({ min: 1, max: 2 ** 40 })),
      generation: fc.option(fc.nat()),
      state,
      detail: fc.option(fc.string({ maxLength: 200 })),
      running_build_id: fc.option(fc.integer({ min: 1, max: 2 ** 40 })),
      progress: fc.option(
        fc.record({
          chunks_done: fc.nat(),
          chunks_total: fc.nat(),
          bytes_done: fc.nat(),
          bytes_total: fc.nat(),
        }),
      ),
    });
    fc.assert(
      fc.property(fc.uniqueArray(status, { selector: (s) => s.app, maxLength: 5 }), (apps) => {
        const message = { type: "status", apps } as RelayMessage;
        expect(decodeRelayMessage(encodeRelayMessage(message), "agent")).toEqual({
          kind: "message",
          message,
        });
      }),
    );
  });

  it("decodeRelayMessage() passes a well-formed unknown kind up instead of failing", () => {
    const frame = JSON.stringify({ type: "have", build_id: 7, bitfield: "AAE=" });
    expect(decodeRelayMessage(frame, "agent")).toEqual({
      kind: "unknown",
      type: "have",
      value: { type: "have", build_id: 7, bitfield: "AAE=" },
    });
  });

  it("decodeRelayMessage() refuses garbage, truncation and a missing type without throwing", () => {
    const full = encodeRelayMessage(hello);
    for (const frame of [
      "",
      "not json",
      "[]",
      "null",
      "42",
      '{"kind":"hello"}',
      '{"type":7}',
      '{"type":"Hello World"}',
      full.slice(0, full.length - 1),
      full.slice(0, 20),
      new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]),
    ]) {
      const decoded = decodeRelayMessage(frame, "agent");
      expect(decoded.kind, String(frame)).toBe("invalid");
    }
  });

  it("decodeRelayMessage() refuses a frame over the cap before parsing it", () => {
    const big = JSON.stringify({
      type: "status",
      apps: [],
      pad: "x".repeat(MAX_RELAY_MESSAGE_BYTES),
    });
    expect(decodeRelayMessage(big, "agent")).toEqual({
      kind: "invalid",
      problems: ["frame exceeds the size cap"],
    });
    expect(decodeRelayMessage(new TextEncoder().encode(big), "agent").kind).toBe("invalid");
    // Multi-byte characters count as their UTF-8 size.
    const wide = `{"type":"x","p":"${"é".repeat(MAX_RELAY_MESSAGE_BYTES / 2 + 10)}"}`;
    expect(decodeRelayMessage(wide, "agent").kind).toBe("invalid");
  });

  it("decodeRelayMessage() refuses a kind the sender does not send", () => {
    const fromAgent = decodeRelayMessage(encodeRelayMessage(goals), "agent");
    expect(fromAgent).toEqual({ kind: "invalid", problems: ["type: agents do not send goals"] });
    expect(decodeRelayMessage(encodeRelayMessage(hello), "relay").kind).toBe("invalid");
  });

  it("decodeRelayMessage() refuses unknown fields and bad values on known kinds", () => {
    const bad = (value: unknown) => decodeRelayMessage(JSON.stringify(value), "agent");
    expect(bad({ ...hello, extra: 1 }).kind).toBe("invalid");
    expect(bad({ ...hello, machine_id: "../etc" }).kind).toBe("invalid");
    expect(bad({ ...hello, region: "US" }).kind).toBe("invalid");
    expect(bad({ ...hello, peer_url: "http://x" }).kind).toBe("invalid");
    expect(bad({ ...hello, apps: [app("web", { state: "running" as never })] }).kind).toBe(
      "invalid",
    );
    expect(bad({ ...hello, apps: [app("web"), app("web")] }).kind).toBe("invalid");
    expect(bad({ ...hello, apps: [app("web", { build_id: 0 })] }).kind).toBe("invalid");
    expect(bad({ ...hello, apps: [app("web", { detail: "x".repeat(2000) })] }).kind).toBe(
      "invalid",
    );
    const many = Array.from({ length: MAX_APPS_PER_MACHINE + 1 }, (_, i) => app(`a${i}`));
    expect(bad({ type: "status", apps: many }).kind).toBe("invalid");
    const relayBad = decodeRelayMessage(
      JSON.stringify({ ...goals, goals: [{ document: "{}", signature: "short" }] }),
      "relay",
    );
    expect(relayBad.kind).toBe("invalid");
    if (relayBad.kind === "invalid") expect(relayBad.problems.join()).toMatch(/signature/);
  });

  it("encodeRelayMessage() refuses an invalid message with a TypeError", () => {
    expect(() => encodeRelayMessage({ ...hello, machine_id: "" } as RelayMessage)).toThrow(
      TypeError,
    );
    expect(() => encodeRelayMessage({ type: "nope" } as unknown as RelayMessage)).toThrow(
      /unknown relay message type/,
    );
  });
});
