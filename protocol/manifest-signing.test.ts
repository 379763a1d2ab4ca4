import { beforeAll, describe, expect, it } from "vitest";
import { encodeManifest, type Manifest } from "./manifest.ts";
import { signManifest, verifyManifest } from "./manifest-signing.ts";
import { generateSigningKeys, Signer, Verifier } from "./signing.ts";

const manifest: Manifest = {
  version: 1,
  app: "web-api",
  build_id: 42,
  commit_sha: "0123456789abcdef0123456789abcdef01234567",
  created_at: "2026-11-26T12:00:00.000Z",
  size: 1100,
  sha256: "c".repeat(64),
  chunker: {
    algorithm: "fastcdc-2020",
    min_size: 64,
    avg_size: 256,
    max_size: 1024,
    normalization: 1,
  },
  chunks: [
    { digest: "a".repeat(64), size: 1000 },
    { digest: "b".repeat(64), size: 100 },
  ],
};

let signer: Signer;
let stranger: Signer;
let verifier: Verifier;

beforeAll(async () => {
  const [keys, other] = await Promise.all([generateSigningKeys(), generateSigningKeys()]);
  signer = await Signer.fromPrivateKey(keys.privateKey);
  stranger = await Signer.fromPrivateKey(other.privateKey);
  verifier = await Verifier.fromPublicKeys(keys.publicKey);
});

const reasonOf = (result: Awaited<ReturnType<typeof verifyManifest>>) =>
  result.ok ? "ok" : result.reason;

describe("manifest signing", () => {
  it("signManifest() signs the canonical bytes; verifyManifest() gives the manifest back", async () => {
    const signed = await signManifest(signer, manifest);
    expect(signed.bytes).toEqual(encodeManifest(manifest));
    expect(await verifyManifest(verifier, signed)).toEqual({ ok: true, manifest });
    // As an API response carries it: the parsed JSON value and the signature.
    const value = JSON.parse(new TextDecoder().decode(signed.bytes));
    expect(
      await verifyManifest(verifier, { manifest: value, signature: signed.signature }),
    ).toEqual({
      ok: true,
      manifest,
    });
  });

  it("verifyManifest() refuses a manifest unsigned, signed by another key, or changed", async () => {
    const signed = await signManifest(signer, manifest);
    const bytes = signed.bytes;
    expect(reasonOf(await verifyManifest(verifier, { bytes, signature: undefined }))).toBe(
      "unsigned",
    );
    const foreign = await signManifest(stranger, manifest);
    expect(reasonOf(await verifyManifest(verifier, foreign))).toBe("bad-signature");
    const changed = encodeManifest({
      ...manifest,
      chunks: [{ digest: "d".repeat(64), size: 1000 }, manifest.chunks[1]!],
    });
    expect(
      reasonOf(await verifyManifest(verifier, { bytes: changed, signature: signed.signature })),
    ).toBe("bad-signature");
    const value = { ...manifest, commit_sha: "f".repeat(40) };
    expect(
      reasonOf(await verifyManifest(verifier, { manifest: value, signature: signed.signature })),
    ).toBe("bad-signature");
  });

  it("verifyManifest() refuses a goal-state signature over the same bytes", async () => {
    const bytes = encodeManifest(manifest);
    const signature = await signer.signDocument("goal-state", bytes);
    expect(reasonOf(await verifyManifest(verifier, { bytes, signature }))).toBe("bad-signature");
  });

  it("verifyManifest() refuses validly signed bytes that are not a valid canonical manifest", async () => {
    const bytes = new TextEncoder().encode(JSON.stringify(manifest, null, 1));
    const signature = await signer.signDocument("manifest", bytes);
    const result = await verifyManifest(verifier, { bytes, signature });
    expect(reasonOf(result)).toBe("invalid-manifest");
    const extra = { manifest: { ...manifest, extra: 1 }, signature };
    expect(reasonOf(await verifyManifest(verifier, extra))).toBe("invalid-manifest");
  });

  it("signManifest() refuses to sign an invalid manifest", async () => {
    await expect(signManifest(signer, { ...manifest, size: 5 })).rejects.toThrow(
      /chunk sizes add up/,
    );
  });
});
