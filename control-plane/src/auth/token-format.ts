/**
 * API token format, shared by the Worker and the local mint command (Web APIs only).
 * A token reads `fst_<id>_<secret>`: the id finds the row, and only a peppered SHA-256 of the
 * secret is stored, so a leaked database does not leak usable tokens.
 */
const PREFIX = "fst_";
const ID_CHARS = "abcdefghijklmnopqrstuvwxyz234567";
const TOKEN = /^fst_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;

function randomId(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += ID_CHARS[b & 31];
  return out;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export async function hashSecret(secret: string, pepper: string): Promise<string> {
  const data = new TextEncoder().encode(`${pepper}\u0000${secret}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export interface NewToken {
  id: string;
  /** The whole bearer token: shown once, never stored. */
  token: string;
  secretHash: string;
}

export async function newToken(pepper: string): Promise<NewToken> {
  const id = randomId(16);
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { id, token: `${PREFIX}${id}_${secret}`, secretHash: await hashSecret(secret, pepper) };
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Compares two equal-length hex digests without an early exit. */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
