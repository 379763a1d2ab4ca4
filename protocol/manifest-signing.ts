import {
  checkManifest,
  decodeManifest,
  encodeManifest,
  type Manifest,
  ManifestError,
} from "./manifest.ts";
import type { SignedDocument, Signer, Verifier, VerifyFailure } from "./signing.ts";

/** A manifest with its canonical bytes (`manifests/<id>.json`) and signature (`.sig`). */
export interface SignedManifest extends SignedDocument {
  readonly manifest: Manifest;
  readonly signature: string;
}

/** Checks, encodes canonically and signs `manifest` (throws a ManifestError if it is invalid). */
export async function signManifest(signer: Signer, manifest: Manifest): Promise<SignedManifest> {
  const bytes = encodeManifest(manifest);
  const signature = await signer.signDocument("manifest", bytes);
  return { manifest: decodeManifest(bytes), bytes, signature };
}

export type ManifestVerifyResult =
  | { readonly ok: true; readonly manifest: Manifest }
  | {
      readonly ok: false;
      /** `invalid-manifest`: the bytes or value are not a canonical, valid manifest. */
      readonly reason: VerifyFailure | "invalid-manifest";
      readonly message: string;
    };

/**
 * The manifest, only if it is validly signed by a trusted key and well formed. Takes either the
 * stored bytes or a parsed JSON value (as an API response carries it); a value is re-encoded
 * canonically, which is what was signed. Refuses the unsigned, the signed-by-another-key and the
 * changed alike: agents act on nothing else.
 */
export async function verifyManifest(
  verifier: Verifier,
  signed:
    | SignedDocument
    | { readonly manifest: unknown; readonly signature: string | null | undefined },
): Promise<ManifestVerifyResult> {
  let bytes: Uint8Array;
  if ("bytes" in signed) {
    bytes = signed.bytes;
  } else {
    const check = checkManifest(signed.manifest);
    if (!check.ok) return invalid(new ManifestError(check.issues));
    bytes = encodeManifest(check.manifest);
  }
  const verdict = await verifier.verifyDocument("manifest", { bytes, signature: signed.signature });
  if (!verdict.ok) return verdict;
  try {
    return { ok: true, manifest: decodeManifest(bytes) };
  } catch (error) {
    if (error instanceof ManifestError) return invalid(error);
    throw error;
  }
}

function invalid(error: ManifestError): ManifestVerifyResult {
  return { ok: false, reason: "invalid-manifest", message: error.message };
}
