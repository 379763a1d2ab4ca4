// Hrana JSON values <-> SQLite values, and the JSON writer for responses.

import { Buffer } from "node:buffer";
import type { SqlValue, WireValue } from "./protocol.ts";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^-?[0-9]+$/;
// Padded or unpadded standard base64; Buffer alone would silently skip invalid characters.
const BASE64_TEXT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Parses the `value` of an `integer` Value; undefined if it is not a 64-bit integer. */
export function parseInt64(text: string): bigint | undefined {
  if (!INTEGER_TEXT.test(text) || text.length > 21) return undefined;
  const value = BigInt(text);
  return value < INT64_MIN || value > INT64_MAX ? undefined : value;
}

/** Decodes the `base64` of a `blob` Value; undefined if it is not base64. */
export function parseBase64(text: string): Uint8Array | undefined {
  if (!BASE64_TEXT.test(text)) return undefined;
  const buffer = Buffer.from(text, "base64");
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function encodeValue(value: SqlValue): WireValue {
  if (value === null) return { type: "null" };
  switch (typeof value) {
    case "bigint":
      return { type: "integer", value: value.toString() };
    case "number":
      return { type: "float", value };
    case "string":
      return { type: "text", value };
    default:
      return {
        type: "blob",
        base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64"),
      };
  }
}

// SQLite can hold +-Infinity in a REAL column, and JSON.stringify would turn it into `null`,
// which the client rejects as a malformed value. `1e999` is valid JSON that parses back to
// Infinity, so non-finite numbers go out as a marker string that is swapped afterwards. The
// marker is random per process, so no user text can collide with it.
const markerId = crypto.randomUUID();
const positiveMarker = `\u0000+inf:${markerId}`;
const negativeMarker = `\u0000-inf:${markerId}`;
const quotedPositive = JSON.stringify(positiveMarker);
const quotedNegative = JSON.stringify(negativeMarker);

/** JSON.stringify that keeps infinite floats as numbers. */
export function stringifyJson(body: unknown): string {
  let sawInfinity = false;
  const text = JSON.stringify(body, (_key, value: unknown) => {
    if (typeof value === "number" && !Number.isFinite(value) && !Number.isNaN(value)) {
      sawInfinity = true;
      return value > 0 ? positiveMarker : negativeMarker;
    }
    return value;
  });
  if (!sawInfinity) return text;
  return text.replaceAll(quotedPositive, "1e999").replaceAll(quotedNegative, "-1e999");
}
