import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../protocol/hash.ts";
import { verifyManifest } from "../../protocol/manifest-signing.ts";
import { Verifier } from "../../protocol/signing.ts";
import { bucketFor } from "../src/artifacts/buckets.ts";
import { claimOne, manifestFor, queueBuild, registerApp } from "./fixtures.ts";
import { call, db, mintToken, resetDb, snapshot, testEnv } from "./helpers.ts";

let admin: string;
let deployer: string;
let builder: string;
const primary = () => bucketFor(testEnv, "us-east");

beforeAll(async () => {
  await resetDb();
  admin = await mintToken("admin");
  deployer = await mintToken("deployer");
  builder = await mintToken("builder");
  await registerApp(admin, "art");
});

function bytesOf(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function putChunk(bytes: Uint8Array, digest?: string, headers: Record<string, string> = {}) {
  const d = digest ?? (await sha256Hex(bytes));
  const r = await call("PUT", `/v1/chunks/${d}`, {
    token: builder,
    body: bytes,
    headers: {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(bytes.length),
      ...headers,
    },
  });
  return { ...r, digest: d };
}

async function wholeSha(parts: Uint8Array[]): Promise<string> {
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    total.set(p, off);
    off += p.length;
  }
  return sha256Hex(total);
}

describe("PUT /v1/chunks/:digest", () => {
  it("stores a chunk whose bytes match its digest, once", async () => {
    const bytes = bytesOf(1, 300_000);
    const first = await putChunk(bytes);
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ digest: first.digest, size: 300_000, stored: true });
    const object = await primary().get(`chunks/${first.digest}`);
    expect(new Uint8Array(await object!.arrayBuffer())).toEqual(bytes);
    const again = await putChunk(bytes);
    expect(again.status).toBe(200);
    expect(again.body.stored).toBe(false);
  });

  it("refuses bytes that do not match the digest and stores them nowhere", async () => {
    const bytes = bytesOf(2, 50_000);
    const wrong = await sha256Hex(bytesOf(3, 50_000));
    const before = await snapshot();
    const r = await putChunk(bytes, wrong);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("digest_mismatch");
    expect(await primary().head(`chunks/${wrong}`)).toBeNull();
    expect(await snapshot()).toEqual(before);
    const missing = await call("POST", "/v1/chunks/missing", {
      token: builder,
      body: { digests: [wrong] },
    });
    expect(missing.body.missing).toEqual([wrong]);
  });

  it("refuses a chunk over the size cap before reading it, a bad digest and a builder-less caller", async () => {
    const digest = "0".repeat(64);
    const big = await call("PUT", `/v1/chunks/${digest}`, {
      token: builder,
      body: "x",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(64 << 20) },
    });
    expect(big.status).toBe(413);
    const bad = await call("PUT", "/v1/chunks/not-a-digest", { token: builder, body: "x" });
    expect(bad.status).toBe(400);
    const role = await call("PUT", `/v1/chunks/${digest}`, { token: deployer, body: "x" });
    expect(role.status).toBe(403);
  });
});

describe("POST /v1/chunks/missing", () => {
  it("names exactly the chunks the primary bucket lacks", async () => {
    const have = await putChunk(bytesOf(10, 1000));
    const lack = await sha256Hex(bytesOf(11, 1000));
    const r = await call("POST", "/v1/chunks/missing", {
      token: builder,
      body: { digests: [have.digest, lack] },
    });
    expect(r.body).toEqual({ missing: [lack] });
    const bad = await call("POST", "/v1/chunks/missing", {
      token: builder,
      body: { digests: ["xyz"] },
    });
    expect(bad.status).toBe(400);
  });
});

describe("completion", () => {
  it("signs and stores the manifest, then SUCCEEDS; the chunks reassemble to the whole hash", async () => {
    const parts = [bytesOf(20, 70_000), bytesOf(21, 90_000), bytesOf(22, 10_000)];
    const chunks = [];
    for (const p of parts) chunks.push({ digest: (await putChunk(p)).digest, size: p.length });
    const id = await queueBuild(deployer, "art");
    const c = (await claimOne(builder))!;
    expect(c.id).toBe(id);
    const manifest = manifestFor(c, chunks, await wholeSha(parts));
    const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "SUCCEEDED", size_bytes: 170_000 });
    expect(r.body.manifest_digest).toMatch(/^[0-9a-f]{64}$/);

    const signed = await call("GET", `/v1/builds/${id}/manifest`, { token: builder });
    expect(signed.status).toBe(200);
    expect(signed.body.public_key).toBe(testEnv.TEST_SIGNING_PUBLIC_KEY);
    const verifier = await Verifier.fromPublicKeys(testEnv.TEST_SIGNING_PUBLIC_KEY!);
    const verdict = await verifyManifest(verifier, signed.body);
    expect(verdict.ok).toBe(true);
    const tampered = { ...signed.body, manifest: { ...signed.body.manifest, size: 1 } };
    expect((await verifyManifest(verifier, tampered)).ok).toBe(false);
    // The chunks, read back from the bucket in manifest order, are the artifact.
    const reassembled = [];
    for (const ch of signed.body.manifest.chunks) {
      reassembled.push(
        new Uint8Array(await (await primary().get(`chunks/${ch.digest}`))!.arrayBuffer()),
      );
    }
    expect(await wholeSha(reassembled)).toBe(signed.body.manifest.sha256);
  });

  it("refuses a manifest naming chunks the bucket lacks (422), changing nothing", async () => {
    const id = await queueBuild(deployer, "art");
    const c = (await claimOne(builder))!;
    const ghost = await sha256Hex(bytesOf(30, 5000));
    const manifest = manifestFor(c, [{ digest: ghost, size: 5000 }], ghost);
    const before = await snapshot();
    const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest },
    });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({
      code: "chunks_missing",
      details: { missing: [ghost], count: 1 },
    });
    expect(await snapshot()).toEqual(before);
    expect(await primary().head(`manifests/${id}.json`)).toBeNull();
  });

  it("refuses a manifest for another build (422) and a malformed one (400)", async () => {
    const id = await queueBuild(deployer, "art");
    const c = (await claimOne(builder))!;
    const other = manifestFor({ ...c, id: c.id + 1000 });
    const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: other },
    });
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe("manifest_mismatch");
    const bad = { ...manifestFor(c), size: 5 };
    const r2 = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: bad },
    });
    expect(r2.status).toBe(400);
    expect(r2.body.error.code).toBe("invalid_manifest");
    const status = (await db.all(sql`SELECT status FROM builds WHERE id = ${id}`)) as {
      status: string;
    }[];
    expect(status[0]!.status).toBe("RUNNING");
  });

  it("stores nothing for a completion of a build canceled while it ran (409)", async () => {
    const id = await queueBuild(deployer, "art");
    const c = (await claimOne(builder))!;
    expect((await call("POST", `/v1/builds/${id}/cancel`, { token: deployer })).status).toBe(200);
    const before = await snapshot();
    const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: manifestFor(c) },
    });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("build_canceled");
    expect(await primary().head(`manifests/${id}.json`)).toBeNull();
    expect(await primary().head(`manifests/${id}.sig`)).toBeNull();
    expect(await snapshot()).toEqual(before);
  });

  it("keeps the signed manifest when a repeat completion brings another one (409)", async () => {
    const part = bytesOf(40, 20_000);
    const chunk = { digest: (await putChunk(part)).digest, size: part.length };
    const id = await queueBuild(deployer, "art");
    const c = (await claimOne(builder))!;
    const manifest = manifestFor(c);
    const first = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest },
    });
    expect(first.status).toBe(200);
    const stored = async () => {
      const json = await (await primary().get(`manifests/${id}.json`))!.text();
      const sig = await (await primary().get(`manifests/${id}.sig`))!.text();
      return { json, sig };
    };
    const signed = await stored();
    const before = await snapshot();
    const other = manifestFor(c, [chunk], await sha256Hex(part));
    const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest: other },
    });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("already_completed");
    expect(await stored()).toEqual(signed);
    expect(await snapshot()).toEqual(before);
    // The same manifest again is still an idempotent 200.
    const again = await call("POST", `/v1/worker/builds/${id}/complete`, {
      token: builder,
      body: { lease_token: c.lease, manifest },
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
  });

  it("has no manifest before the build succeeds", async () => {
    const id = await queueBuild(deployer, "art");
    const r = await call("GET", `/v1/builds/${id}/manifest`, { token: builder });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("no_manifest");
  });

  it("publishes the public key without auth", async () => {
    const r = await call("GET", "/v1/signing-key");
    expect(r.body).toEqual({ algorithm: "Ed25519", public_key: testEnv.TEST_SIGNING_PUBLIC_KEY });
  });
});
