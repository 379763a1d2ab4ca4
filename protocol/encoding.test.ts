import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromBase64, fromHex, toBase64, toHex } from "./encoding.ts";

describe("encoding", () => {
  it("toHex()/fromHex() and toBase64()/fromBase64() round-trip any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromBase64(toBase64(bytes))).toEqual(bytes);
      }),
    );
  });

  it("toBase64() is standard padded base64 (RFC 4648 vectors)", () => {
    const text = (s: string) => new TextEncoder().encode(s);
    expect(toBase64(text("f"))).toBe("Zg==");
    expect(toBase64(text("fo"))).toBe("Zm8=");
    expect(toBase64(text("foobar"))).toBe("Zm9vYmFy");
    expect(toBase64(Uint8Array.of(0xfb, 0xff))).toBe("+/8=");
  });

  it("fromHex() and fromBase64() refuse malformed text", () => {
    expect(() => fromHex("abc")).toThrow(TypeError);
    expect(() => fromHex("zz")).toThrow(TypeError);
    expect(() => fromBase64("Zg")).toThrow(TypeError);
    expect(() => fromBase64("Zg==\n")).toThrow(TypeError);
    expect(() => fromBase64("-_8=")).toThrow(TypeError);
  });
});
