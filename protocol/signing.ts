import { fromBase64, toBase64 } from "./encoding.ts";

// Ed25519 signatures on crypto.subtle (`{name: "Ed25519"}`: Node 22, Deno and workerd).
//
// Key strings, for env vars and secrets:
// - private key: base64 of the PKCS#8 DER encoding (64 characters), which is also the body of
//   the PEM that `openssl genpkey -algorithm ed25519` prints; the whole PEM is accepted too.
// - public key: base64 of the 32 raw key bytes (44 characters).
// Signatures travel as base64 of their 64 bytes (88 characters).

const ED25519 = { name: "Ed25519" } as const;

/**
 * What a signature can be about. The kind is part of the signed bytes (domain separation), so a
 * signature made for one kind never verifies as another: a signed manifest cannot be replayed
 * as a goal state. Add kinds here; never reuse one for a different format.
 */
export type DocumentKind = "manifest" | "goal-state";

const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** The bytes actually signed for a document of `kind`: `fleetship/v1/<kind>\n` + `bytes`. */
export function signedBytes(kind: DocumentKind, bytes: Uint8Array): Uint8Array {
  if (!KIND_PATTERN.test(kind))
    throw new TypeError(`invalid document kind ${JSON.stringify(kind)}`);
  const prefix = new TextEncoder().encode(`fleetship/v1/${kind}\n`);
  const out = new Uint8Array(prefix.length + bytes.length);
  out.set(prefix);
  out.set(bytes, prefix.length);
  return out;
}

/** A new key pair as strings (see the key formats above). */
export async function generateSigningKeys(): Promise<{ privateKey: string; publicKey: string }> {
  const pair = (await crypto.subtle.generateKey(ED25519, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", pair.privateKey);
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  return {
    privateKey: toBase64(new Uint8Array(pkcs8 as ArrayBuffer)),
    publicKey: toBase64(new Uint8Array(raw as ArrayBuffer)),
  };
}

/** A private key string that could not be used; the message never contains the key. */
export class KeyFormatError extends TypeError {
  override name = "KeyFormatError";
}

/** Signs documents with one private key. */
export class Signer {
  readonly #key: CryptoKey;
  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /** A signer for a private key string: base64 PKCS#8 or a PEM `PRIVATE KEY` block. */
  static async fromPrivateKey(text: string): Promise<Signer> {
    const body = text
      .trim()
      .replace(/^-----BEGIN PRIVATE KEY-----/, "")
      .replace(/-----END PRIVATE KEY-----$/, "")
      .replace(/\s+/g, "");
    let der: Uint8Array;
    try {
      der = fromBase64(body);
    } catch (cause) {
      throw new KeyFormatError("private key: expected base64 PKCS#8 (or a PEM PRIVATE KEY)", {
        cause,
      });
    }
    try {
      return new Signer(
        await crypto.subtle.importKey("pkcs8", asBuffer(der), ED25519, false, ["sign"]),
      );
    } catch (cause) {
      throw new KeyFormatError("private key: not an Ed25519 PKCS#8 key", { cause });
    }
  }

  /** A base64 signature of `bytes` as a document of `kind`. */
  async signDocument(kind: DocumentKind, bytes: Uint8Array): Promise<string> {
    const signature = await crypto.subtle.sign(
      ED25519,
      this.#key,
      asBuffer(signedBytes(kind, bytes)),
    );
    return toBase64(new Uint8Array(signature));
  }
}

/** Why a document was refused. */
export type VerifyFailure =
  /** No signature came with the document. */
  | "unsigned"
  /** The signature is not 64 bytes of base64. */
  | "malformed-signature"
  /** Made by another key, for another kind, or the document was changed after signing. */
  | "bad-signature";

/** A document's bytes together with the signature that came with them (if any). */
export interface SignedDocument {
  readonly bytes: Uint8Array;
  /** Base64; missing or empty means unsigned. */
  readonly signature: string | null | undefined;
}

export type VerifyResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: VerifyFailure; readonly message: string };

/**
 * Verifies documents against trusted public keys. Several keys may be trusted at once so that
 * the signing key can be rotated: a signature from any of them is accepted.
 */
export class Verifier {
  readonly #keys: readonly CryptoKey[];
  private constructor(keys: readonly CryptoKey[]) {
    this.#keys = keys;
  }

  /** A verifier trusting each of `publicKeys` (base64 of 32 raw bytes each). */
  static async fromPublicKeys(publicKeys: string | readonly string[]): Promise<Verifier> {
    const texts = typeof publicKeys === "string" ? [publicKeys] : publicKeys;
    if (texts.length === 0) throw new TypeError("a verifier needs at least one public key");
    const keys: CryptoKey[] = [];
    for (const [i, text] of texts.entries()) {
      let raw: Uint8Array;
      try {
        raw = fromBase64(text.trim());
      } catch (cause) {
        throw new KeyFormatError(`public key ${i}: expected base64 of 32 bytes`, { cause });
      }
      if (raw.length !== 32) {
        throw new KeyFormatError(`public key ${i}: expected 32 bytes, got ${raw.length}`);
      }
      keys.push(await crypto.subtle.importKey("raw", asBuffer(raw), ED25519, false, ["verify"]));
    }
    return new Verifier(keys);
  }

  /** Whether `document.signature` signs `document.bytes` as a `kind` by a trusted key. */
  async verifyDocument(kind: DocumentKind, document: SignedDocument): Promise<VerifyResult> {
    const { bytes, signature } = document;
    if (signature === null || signature === undefined || signature.trim() === "") {
      return { ok: false, reason: "unsigned", message: `${kind} is not signed` };
    }
    let sig: Uint8Array;
    try {
      sig = fromBase64(signature.trim());
    } catch {
      sig = new Uint8Array(0);
    }
    if (sig.length !== 64) {
      return {
        ok: false,
        reason: "malformed-signature",
        message: `${kind} signature is not base64 of 64 bytes`,
      };
    }
    const message = asBuffer(signedBytes(kind, bytes));
    for (const key of this.#keys) {
      const good = await crypto.subtle
        .verify(ED25519, key, asBuffer(sig), message)
        .catch(() => false);
      if (good) return { ok: true };
    }
    return {
      ok: false,
      reason: "bad-signature",
      message: `${kind} signature does not match any trusted key (wrong key, or changed since signing)`,
    };
  }
}

/** crypto.subtle's types want ArrayBuffer-backed views; ours always are. */
function asBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}
