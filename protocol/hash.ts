import { sha256 } from "@noble/hashes/sha2.js";
import { type ByteSource, readPieces } from "./byte-source.ts";
import { toHex } from "./encoding.ts";

/** A SHA-256 digest as the system writes it everywhere: 64 lowercase hex characters. */
export const DIGEST_PATTERN: RegExp = /^[0-9a-f]{64}$/;

/** True when `value` is a well-formed digest (64 lowercase hex characters). */
export function isDigest(value: unknown): value is string {
  return typeof value === "string" && DIGEST_PATTERN.test(value);
}

/** SHA-256 of `bytes` as lowercase hex, on crypto.subtle (native, and off-thread in Node and Deno). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // crypto.subtle's types want an ArrayBuffer-backed view; bytes backed by a SharedArrayBuffer
  // are not used in this system.
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return toHex(new Uint8Array(digest));
}

/**
 * A hash fed piece by piece. Matches both `@noble/hashes` (`sha256.create()`) and Node's or
 * Deno's `node:crypto` `createHash("sha256")`, so a program may pass its runtime's native
 * hasher (about 2 GB/s against about 250 MB/s for the portable one on the same machine).
 */
export interface IncrementalHash {
  update(bytes: Uint8Array): unknown;
  digest(): Uint8Array;
}

/** A portable incremental SHA-256 (crypto.subtle hashes only whole buffers). */
export function createSha256(): IncrementalHash {
  return sha256.create();
}

/** SHA-256 of everything `source` yields, lowercase hex; holds one piece at a time. */
export async function sha256HexOfStream(
  source: ByteSource,
  hasher: IncrementalHash = createSha256(),
): Promise<string> {
  for await (const piece of readPieces(source)) hasher.update(piece);
  return toHex(hasher.digest());
}
