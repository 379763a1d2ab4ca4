import { md5 } from "@noble/hashes/legacy.js";
import { describe, expect, it } from "vitest";
import { GEAR_HI, GEAR_LO, MASK_BITS_MAX, MASK_BITS_MIN, MASKS } from "./fastcdc-tables.ts";

describe("fastcdc tables", () => {
  it("GEAR[i] is the first 8 bytes of MD5(64 bytes of value i)", () => {
    for (let i = 0; i < 256; i++) {
      const digest = new DataView(md5(new Uint8Array(64).fill(i)).buffer);
      expect([GEAR_HI[i]! >>> 0, GEAR_LO[i]! >>> 0]).toEqual([
        digest.getUint32(0),
        digest.getUint32(4),
      ]);
    }
  });

  it("GEAR matches the values published with the Rust crate (spot checks)", () => {
    const gear = (i: number) =>
      ((BigInt(GEAR_HI[i]! >>> 0) << 32n) | BigInt(GEAR_LO[i]! >>> 0))
        .toString(16)
        .padStart(16, "0");
    expect(gear(0)).toBe("3b5d3c7d207e37dc");
    expect(gear(1)).toBe("784d68ba91123086");
    expect(gear(128)).toBe("c0ce47f889336346");
    expect(gear(132)).toBe("fca2f406b1c8bb50");
    expect(gear(255)).toBe("aabd2b2a451504e1");
  });

  it("MASKS[k] has exactly k one bits, in both halves from 8 bits up", () => {
    for (let bits = MASK_BITS_MIN; bits <= MASK_BITS_MAX; bits++) {
      const [hi, lo] = MASKS.get(bits)!;
      const ones = (n: number) => (n >>> 0).toString(2).replaceAll("0", "").length;
      expect(ones(hi) + ones(lo)).toBe(bits);
      // CutFinder screens on the low half first: it must never be empty.
      expect(lo).not.toBe(0);
    }
  });
});
