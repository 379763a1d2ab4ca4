import { Signer } from "../../../protocol/signing.ts";
import { ApiError } from "../errors.ts";

interface Keys {
  signer: Signer;
  publicKey: string;
}

// Importing a key costs a little; an isolate serves many requests with one SIGNING_KEY.
let cached: { text: string; keys: Promise<Keys> } | undefined;

/** The control plane's Ed25519 signer and its public key (derived, so only one secret is kept). */
export function signingKeys(text: string | undefined): Promise<Keys> {
  if (!text) {
    throw new ApiError(500, "misconfigured", "SIGNING_KEY is not set: see README, Configuration");
  }
  if (cached?.text !== text) cached = { text, keys: load(text) };
  return cached.keys;
}

async function load(text: string): Promise<Keys> {
  const signer = await Signer.fromPrivateKey(text);
  const body = text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(body), (ch) => ch.charCodeAt(0));
  const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
  const jwk = (await crypto.subtle.exportKey("jwk", key)) as JsonWebKey;
  if (!jwk.x) throw new Error("SIGNING_KEY: could not derive its public key");
  const publicKey = btoa(atob(jwk.x.replaceAll("-", "+").replaceAll("_", "/")));
  return { signer, publicKey };
}
