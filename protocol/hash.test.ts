import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { toHex } from "./encoding.ts";
import { createSha256, isDigest, sha256Hex, sha256HexOfStream } from "./hash.ts";
import { pseudoRandomBytes, streamOf } from "./test-support.ts";

const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

describe("hash", () => {
  it("sha256Hex() gives the FIPS 180-2 digests", async () => {
    expect(await sha256Hex(new Uint8Array(0))).toBe(EMPTY);
    expect(await sha256Hex(new TextEncoder().encode("abc"))).toBe(ABC);
  });

  it("createSha256() fed in pieces equals the one-shot digest", async () => {
    const data = pseudoRandomBytes(100_003, 2);
    const hasher = createSha256();
    for (let at = 0; at < data.length; at += 7919) hasher.update(data.subarray(at, at + 7919));
    expect(toHex(hasher.digest())).toBe(await sha256Hex(data));
  });

  it("sha256HexOfStream() hashes a stream, with the portable or a native hasher", async () => {
    const data = pseudoRandomBytes(300_000, 3);
    const expected = await sha256Hex(data);
    expect(await sha256HexOfStream(streamOf(data, [1000, 77, 65536]))).toBe(expected);
    expect(await sha256HexOfStream(streamOf(data), createHash("sha256"))).toBe(expected);
  });

  it("isDigest() accepts only 64 lowercase hex characters", () => {
    expect(isDigest(ABC)).toBe(true);
    expect(isDigest(ABC.toUpperCase())).toBe(false);
    expect(isDigest(`${ABC}0`)).toBe(false);
    expect(isDigest(ABC.slice(1))).toBe(false);
    expect(isDigest(`${ABC.slice(1)}g`)).toBe(false);
    expect(isDigest(42)).toBe(false);
  });
});
