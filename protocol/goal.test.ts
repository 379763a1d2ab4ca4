import { describe, expect, it } from "vitest";
import { canaryBucket, type GoalDocument, signGoal, verifyGoal } from "./goal.ts";
import { generateSigningKeys, Signer, Verifier } from "./signing.ts";

const base: GoalDocument = {
  version: 1,
  region: "eu-west",
  app: "web",
  generation: 7,
  deployment_id: 3,
  build_id: 42,
  manifest_digest: "a".repeat(64),
  run_command: "./app",
  health_check: { type: "http", path: "/healthz", port: 8080 },
  canary: null,
  issued_at: "2026-11-26T12:00:00.000Z",
  expires_at: "2026-11-26T13:00:00.000Z",
};
const now = new Date("2026-11-26T12:30:00Z");

async function keys() {
  const k = await generateSigningKeys();
  return {
    signer: await Signer.fromPrivateKey(k.privateKey),
    verifier: await Verifier.fromPublicKeys(k.publicKey),
  };
}

describe("verifyGoal()", () => {
  it("accepts a goal signed by the trusted key, for this region, unexpired", async () => {
    const { signer, verifier } = await keys();
    const r = await verifyGoal(verifier, await signGoal(signer, base), { region: "eu-west", now });
    expect(r).toEqual({ ok: true, goal: base });
  });

  it.each([
    ["another region", { region: "us-east", now }, "wrong-region"],
    ["after expiry", { region: "eu-west", now: new Date("2026-11-26T13:00:01Z") }, "expired"],
    [
      "an older generation than applied",
      { region: "eu-west", now, appliedGeneration: 8 },
      "stale-generation",
    ],
  ] as const)("refuses a goal for %s", async (_what, expectation, reason) => {
    const { signer, verifier } = await keys();
    const r = await verifyGoal(verifier, await signGoal(signer, base), expectation);
    expect(r).toMatchObject({ ok: false, reason });
  });

  it("carries placement and undeploy signed; a goal without them keeps its bytes from before", async () => {
    const { signer, verifier } = await keys();
    const plain = await signGoal(signer, base);
    expect(plain.document).not.toContain("placement");
    expect(plain.document).not.toContain("undeployed");
    const placed: GoalDocument = {
      ...base,
      placement: { labels: { zone: "b", pool: "web" } },
      undeployed: true,
    };
    const signed = await signGoal(signer, placed);
    expect(signed.document).toContain(
      '"placement":{"labels":{"pool":"web","zone":"b"}},"undeployed":true',
    );
    const r = await verifyGoal(verifier, signed, { region: "eu-west", now });
    expect(r).toMatchObject({
      ok: true,
      goal: { placement: { labels: { pool: "web", zone: "b" } } },
    });
    // A relay cannot strip the placement (or the undeploy) without breaking the signature.
    const stripped = { ...signed, document: signed.document.replace(',"undeployed":true', "") };
    expect(await verifyGoal(verifier, stripped, { region: "eu-west", now })).toMatchObject({
      ok: false,
    });
  });

  it("accepts the same generation again (idempotent re-delivery)", async () => {
    const { signer, verifier } = await keys();
    const r = await verifyGoal(verifier, await signGoal(signer, base), {
      region: "eu-west",
      now,
      appliedGeneration: 7,
    });
    expect(r.ok).toBe(true);
  });

  it("refuses unsigned, tampered, other-key and manifest-kind signatures", async () => {
    const { signer, verifier } = await keys();
    const other = await keys();
    const signed = await signGoal(signer, base);
    const expectation = { region: "eu-west", now };
    expect(await verifyGoal(verifier, { ...signed, signature: "" }, expectation)).toMatchObject({
      reason: "unsigned",
    });
    const tampered = signed.document.replace('"build_id":42', '"build_id":41');
    expect(
      await verifyGoal(verifier, { ...signed, document: tampered }, expectation),
    ).toMatchObject({ reason: "bad-signature" });
    expect(
      await verifyGoal(verifier, await signGoal(other.signer, base), expectation),
    ).toMatchObject({ reason: "bad-signature" });
    const bytes = new TextEncoder().encode(signed.document);
    const asManifest = {
      document: signed.document,
      signature: await signer.signDocument("manifest", bytes),
    };
    expect(await verifyGoal(verifier, asManifest, expectation)).toMatchObject({
      reason: "bad-signature",
    });
  });

  it("refuses a validly signed but non-canonical document", async () => {
    const { signer, verifier } = await keys();
    const text = JSON.stringify(base, null, 1);
    const signature = await signer.signDocument("goal-state", new TextEncoder().encode(text));
    const r = await verifyGoal(verifier, { document: text, signature }, { region: "eu-west", now });
    expect(r).toMatchObject({ ok: false, reason: "invalid-goal" });
  });
});

describe("canaryBucket()", () => {
  it("spreads machines evenly and stays stable for a generation", () => {
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[Math.floor(canaryBucket(`m-${i}`, 5) / 10)]++;
    for (const c of counts) expect(c).toBeGreaterThan(850);
    expect(canaryBucket("m-1", 5)).toBe(canaryBucket("m-1", 5));
  });
});
