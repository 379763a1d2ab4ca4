import { describe, expect, it } from "vitest";
import { fromHex, toBase64, toHex } from "./encoding.ts";
import { generateSigningKeys, KeyFormatError, Signer, signedBytes, Verifier } from "./signing.ts";

// RFC 8032 section 7.1, test 1.
const RFC_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC_SIGNATURE =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
const PKCS8_PREFIX = "302e020100300506032b657004220420";
const RFC_PRIVATE = toBase64(fromHex(PKCS8_PREFIX + RFC_SEED));

const text = (s: string) => new TextEncoder().encode(s);

describe("signing", () => {
  it("the private key format is base64 PKCS#8: RFC 8032 test 1 signs as published", async () => {
    const key = await crypto.subtle.importKey(
      "pkcs8",
      fromHex(PKCS8_PREFIX + RFC_SEED) as Uint8Array<ArrayBuffer>,
      { name: "Ed25519" },
      true,
      ["sign"],
    );
    const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, new Uint8Array(0));
    expect(toHex(new Uint8Array(signature))).toBe(RFC_SIGNATURE);
    const jwk = (await crypto.subtle.exportKey("jwk", key)) as JsonWebKey;
    expect(
      toHex(
        Uint8Array.from(atob(jwk.x!.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
      ),
    ).toBe(RFC_PUBLIC);
  });

  it("signDocument() is deterministic Ed25519 over `fleetship/v1/<kind>\\n` + bytes", async () => {
    const signer = await Signer.fromPrivateKey(RFC_PRIVATE);
    const signature = await signer.signDocument("goal-state", text("{}"));
    expect(new TextDecoder().decode(signedBytes("goal-state", text("{}")))).toBe(
      "fleetship/v1/goal-state\n{}",
    );
    expect(signature).toBe(await signer.signDocument("goal-state", text("{}")));
    const verifier = await Verifier.fromPublicKeys(toBase64(fromHex(RFC_PUBLIC)));
    expect(await verifier.verifyDocument("goal-state", { bytes: text("{}"), signature })).toEqual({
      ok: true,
    });
  });

  it("generateSigningKeys() gives string keys that sign and verify", async () => {
    const keys = await generateSigningKeys();
    expect(keys.privateKey).toMatch(/^[A-Za-z0-9+/]{64}$/);
    expect(keys.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const signer = await Signer.fromPrivateKey(keys.privateKey);
    const verifier = await Verifier.fromPublicKeys(keys.publicKey);
    const bytes = text("hello");
    const signature = await signer.signDocument("manifest", bytes);
    expect(signature).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(await verifier.verifyDocument("manifest", { bytes, signature })).toEqual({ ok: true });
  });

  it("verifyDocument() refuses the unsigned, the malformed, the tampered, another key and another kind", async () => {
    const [mine, theirs] = await Promise.all([generateSigningKeys(), generateSigningKeys()]);
    const verifier = await Verifier.fromPublicKeys(mine.publicKey);
    const bytes = text("app web-api generation 7");
    const signature = await (await Signer.fromPrivateKey(mine.privateKey)).signDocument(
      "goal-state",
      bytes,
    );
    const foreign = await (await Signer.fromPrivateKey(theirs.privateKey)).signDocument(
      "goal-state",
      bytes,
    );
    const reason = async (
      kind: "manifest" | "goal-state",
      b: Uint8Array,
      sig: string | undefined,
    ) => {
      const result = await verifier.verifyDocument(kind, { bytes: b, signature: sig });
      return result.ok ? "ok" : result.reason;
    };
    expect(await reason("goal-state", bytes, signature)).toBe("ok");
    expect(await reason("goal-state", bytes, undefined)).toBe("unsigned");
    expect(await reason("goal-state", bytes, "")).toBe("unsigned");
    expect(await reason("goal-state", bytes, "not base64!")).toBe("malformed-signature");
    expect(await reason("goal-state", bytes, toBase64(new Uint8Array(63)))).toBe(
      "malformed-signature",
    );
    expect(await reason("goal-state", text("app web-api generation 8"), signature)).toBe(
      "bad-signature",
    );
    expect(await reason("goal-state", bytes, foreign)).toBe("bad-signature");
    expect(await reason("manifest", bytes, signature)).toBe("bad-signature");
  });

  it("a Verifier trusting two keys accepts either (key rotation)", async () => {
    const [old, next] = await Promise.all([generateSigningKeys(), generateSigningKeys()]);
    const verifier = await Verifier.fromPublicKeys([old.publicKey, next.publicKey]);
    for (const keys of [old, next]) {
      const signature = await (await Signer.fromPrivateKey(keys.privateKey)).signDocument(
        "manifest",
        text("x"),
      );
      expect(await verifier.verifyDocument("manifest", { bytes: text("x"), signature })).toEqual({
        ok: true,
      });
    }
  });

  it("Signer.fromPrivateKey() accepts a PEM block and refuses other text without echoing it", async () => {
    const pem = `-----BEGIN PRIVATE KEY-----\n${RFC_PRIVATE}\n-----END PRIVATE KEY-----\n`;
    const a = await (await Signer.fromPrivateKey(pem)).signDocument("manifest", text("x"));
    const b = await (await Signer.fromPrivateKey(RFC_PRIVATE)).signDocument("manifest", text("x"));
    expect(a).toBe(b);
    await expect(Signer.fromPrivateKey("secret-but-wrong")).rejects.toThrow(KeyFormatError);
    await expect(Signer.fromPrivateKey(toBase64(new Uint8Array(48)))).rejects.toThrow(
      /not an Ed25519 PKCS#8 key/,
    );
    const error = await Signer.fromPrivateKey("secret-but-wrong").catch((e: Error) => e);
    expect(String(error)).not.toContain("secret-but-wrong");
  });

  it("Verifier.fromPublicKeys() refuses keys that are not 32 bytes of base64", async () => {
    await expect(Verifier.fromPublicKeys("abc")).rejects.toThrow(KeyFormatError);
    await expect(Verifier.fromPublicKeys(toBase64(new Uint8Array(31)))).rejects.toThrow(/32 bytes/);
    await expect(Verifier.fromPublicKeys([])).rejects.toThrow(TypeError);
  });
});
