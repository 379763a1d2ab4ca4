import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodePeerFrame,
  encodePeerMessage,
  MAX_CHUNKS_PER_BUILD,
  MAX_PEER_FRAME_BYTES,
  MAX_PIECE_BYTES,
  type PeerMessage,
  PeerWireError,
  PIECE_HEADER_BYTES,
  pieceRoom,
} from "./peer-wire.ts";

const build = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const index = fc.integer({ min: 0, max: MAX_CHUNKS_PER_BUILD - 1 });
const have = fc.integer({ min: 0, max: 200 }).chain((chunks) =>
  fc.record({
    type: fc.constant("have" as const),
    build_id: build,
    chunks: fc.constant(chunks),
    bitfield: fc.uint8Array({ minLength: Math.ceil(chunks / 8), maxLength: Math.ceil(chunks / 8) }),
  }),
);
const message: fc.Arbitrary<PeerMessage> = fc.oneof(
  have,
  fc.record({ type: fc.constant("request" as const), build_id: build, index }),
  fc.record({ type: fc.constant("cancel" as const), build_id: build, index }),
  fc.record({
    type: fc.constant("piece" as const),
    build_id: build,
    index,
    bytes: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.constant({ type: "choke" as const }),
  fc.constant({ type: "unchoke" as const }),
);

/** What a decoder must keep of a `have`: the bits of real chunks. */
function normalized(m: PeerMessage): PeerMessage {
  if (m.type !== "have" || m.chunks % 8 === 0) return m;
  const bitfield = m.bitfield.slice();
  bitfield[bitfield.length - 1]! &= (1 << (m.chunks % 8)) - 1;
  return { ...m, bitfield };
}

function decodeError(frame: Uint8Array): PeerWireError {
  try {
    decodePeerFrame(frame);
  } catch (err) {
    if (err instanceof PeerWireError) return err;
    throw err;
  }
  throw new Error("decoded a malformed frame");
}

describe("peer wire", () => {
  it("decodePeerFrame(encodePeerMessage(m)) gives m back", () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(decodePeerFrame(encodePeerMessage(m))).toEqual({
          kind: "message",
          message: normalized(m),
        });
      }),
    );
  });

  it("decodePeerFrame() throws nothing but PeerWireError on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (frame) => {
        try {
          const decoded = decodePeerFrame(frame);
          if (decoded.kind === "message" && decoded.message.type === "piece")
            expect(decoded.message.bytes.length).toBeLessThanOrEqual(MAX_PIECE_BYTES);
        } catch (err) {
          expect(err).toBeInstanceOf(PeerWireError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("decodePeerFrame() refuses every truncation and extension of a valid frame", () => {
    fc.assert(
      fc.property(message, fc.uint8Array({ minLength: 1, maxLength: 8 }), (m, extra) => {
        const frame = encodePeerMessage(m);
        for (let cut = 1; cut < frame.length; cut++) {
          expect(tryCode(frame.subarray(0, cut))).toMatch(/truncated|trailing_bytes/);
        }
        const longer = new Uint8Array(frame.length + extra.length);
        longer.set(frame);
        longer.set(extra, frame.length);
        expect(tryCode(longer)).not.toBe("ok");
      }),
    );
  });

  it("decodePeerFrame() enforces the frame and piece caps before reading bytes", () => {
    expect(decodeError(new Uint8Array(MAX_PEER_FRAME_BYTES + 1)).code).toBe("too_large");
    const header = encodePeerMessage({
      type: "piece",
      build_id: 1,
      index: 0,
      bytes: new Uint8Array(),
    });
    new DataView(header.buffer).setUint32(13, MAX_PIECE_BYTES + 1);
    expect(decodeError(header).code).toBe("too_large");
    new DataView(header.buffer).setUint32(13, 10);
    expect(decodeError(header).code).toBe("truncated");
    expect(() =>
      encodePeerMessage({
        type: "piece",
        build_id: 1,
        index: 0,
        bytes: new Uint8Array(MAX_PIECE_BYTES + 1),
      }),
    ).toThrow(RangeError);
    const full = encodePeerMessage({
      type: "piece",
      build_id: 1,
      index: 0,
      bytes: new Uint8Array(MAX_PIECE_BYTES),
    });
    expect(full.length).toBe(PIECE_HEADER_BYTES + MAX_PIECE_BYTES);
    expect(decodePeerFrame(full).kind).toBe("message");
  });

  it("decodePeerFrame() refuses build 0, huge counts and bits past the last chunk", () => {
    const request = encodePeerMessage({ type: "request", build_id: 5, index: 1 });
    new DataView(request.buffer).setBigUint64(1, 0n);
    expect(decodeError(request).code).toBe("bad_build");
    new DataView(request.buffer).setBigUint64(1, 2n ** 60n);
    expect(decodeError(request).code).toBe("bad_build");
    const h = encodePeerMessage({
      type: "have",
      build_id: 5,
      chunks: 3,
      bitfield: Uint8Array.of(7),
    });
    expect(decodeError(Uint8Array.from([...h.subarray(0, 13), 0xff])).code).toBe("bad_bitfield");
    new DataView(h.buffer).setUint32(9, MAX_CHUNKS_PER_BUILD + 1);
    expect(decodeError(h).code).toBe("bad_count");
    expect(decodeError(new Uint8Array()).code).toBe("empty");
  });

  it("encodePeerMessage() frames a piece read into pieceRoom() where it lies; decode gives a view", () => {
    fc.assert(
      fc.property(build, index, fc.uint8Array({ maxLength: 300 }), (b, i, bytes) => {
        const room = pieceRoom(bytes.length);
        room.set(bytes);
        const frame = encodePeerMessage({ type: "piece", build_id: b, index: i, bytes: room });
        expect(frame.buffer).toBe(room.buffer); // not copied
        expect(frame).toEqual(encodePeerMessage({ type: "piece", build_id: b, index: i, bytes }));
        const decoded = decodePeerFrame(frame);
        if (decoded.kind !== "message" || decoded.message.type !== "piece")
          throw new Error("piece");
        expect(decoded.message.bytes.buffer).toBe(frame.buffer); // a view, not a copy
        expect([...decoded.message.bytes]).toEqual([...bytes]);
      }),
    );
  });

  it("encodePeerMessage() copies a piece that is not in a room of its own, leaving its buffer alone", () => {
    const shared = new Uint8Array(100).fill(9);
    const bytes = shared.subarray(PIECE_HEADER_BYTES, 50); // header-sized gap, but a bigger buffer
    const frame = encodePeerMessage({ type: "piece", build_id: 3, index: 1, bytes });
    expect(frame.buffer).not.toBe(shared.buffer);
    expect([...shared]).toEqual(new Array(100).fill(9)); // no header written into it
    expect([...frame.subarray(PIECE_HEADER_BYTES)]).toEqual([...bytes]);
  });

  it("decodePeerFrame() passes an unknown kind up with its payload", () => {
    expect(decodePeerFrame(Uint8Array.of(99, 1, 2))).toEqual({
      kind: "unknown",
      code: 99,
      payload: Uint8Array.of(1, 2),
    });
  });
});

function tryCode(frame: Uint8Array): string {
  try {
    decodePeerFrame(frame);
    return "ok";
  } catch (err) {
    if (err instanceof PeerWireError) return err.code;
    throw err;
  }
}
