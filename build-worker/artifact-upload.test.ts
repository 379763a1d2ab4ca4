// deno-lint-ignore-file require-await -- fakes and callbacks implement async contracts without awaiting
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CHUNKER_ALGORITHM, type ChunkerParams, type Manifest } from "../protocol/index.ts";
import { ApiError, type ControlPlane, TransportError } from "./api.ts";
import { ArtifactChangedError, chunkArtifact, uploadMissing } from "./artifact-upload.ts";
import { silentLogger } from "./log.ts";

const SMALL: ChunkerParams = {
  algorithm: CHUNKER_ALGORITHM,
  min_size: 4 * 1024,
  avg_size: 16 * 1024,
  max_size: 64 * 1024,
  normalization: 1,
};
const identity = { app: "demo", build_id: 1, commit_sha: "a".repeat(40) };

/** Deterministic bytes that do not repeat (so chunks do not dedupe by accident). */
function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A bucket in memory behind the two chunk calls; everything else is unused here. */
function fakeApi(opts: { failPut?: (digest: string, n: number) => unknown } = {}) {
  const stored = new Map<string, Uint8Array>();
  const puts: string[] = [];
  const missingCalls: number[] = [];
  const unused = () => Promise.reject(new Error("not used"));
  const api: ControlPlane = {
    claim: unused,
    heartbeat: unused,
    appendLogs: unused,
    complete: unused,
    fail: unused,
    getBuild: unused,
    async missingChunks(digests) {
      missingCalls.push(digests.length);
      assert.ok(digests.length <= 4096);
      return digests.filter((d) => !stored.has(d));
    },
    async putChunk(digest, body) {
      puts.push(digest);
      const err = opts.failPut?.(digest, puts.filter((d) => d === digest).length);
      if (err) throw err;
      assert.equal(sha256(body), digest, "the body hashes to its digest");
      const fresh = !stored.has(digest);
      stored.set(digest, body.slice());
      return { stored: fresh };
    },
  };
  return { api, stored, puts, missingCalls };
}

async function withFile<T>(content: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, content);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

function deps(api: ControlPlane) {
  return {
    api,
    logger: silentLogger,
    buildId: 1,
    concurrency: 3,
    signal: new AbortController().signal,
  };
}

function reassemble(manifest: Manifest, stored: Map<string, Uint8Array>): Uint8Array {
  const out = new Uint8Array(manifest.size);
  let offset = 0;
  for (const chunk of manifest.chunks) {
    const b = stored.get(chunk.digest);
    assert.ok(b, `chunk ${chunk.digest} was uploaded`);
    out.set(b, offset);
    offset += b.length;
  }
  return out;
}

Deno.test("uploadMissing() uploads every chunk once; the bucket then rebuilds the file", async () => {
  const content = bytes(1_000_000, 7);
  await withFile(content, async (path) => {
    const manifest = await chunkArtifact(path, identity, SMALL);
    assert.equal(manifest.sha256, sha256(content));
    const fake = fakeApi();
    const summary = await uploadMissing(path, manifest, deps(fake.api));
    assert.equal(summary.chunks_uploaded, new Set(manifest.chunks.map((c) => c.digest)).size);
    assert.equal(summary.bytes_uploaded, manifest.size);
    assert.equal(fake.puts.length, summary.chunks_uploaded);
    assert.equal(sha256(reassemble(manifest, fake.stored)), manifest.sha256);
  });
});

Deno.test("uploadMissing() sends only the chunks a changed artifact does not share", async () => {
  const v1 = bytes(2_000_000, 11);
  const v2 = v1.slice();
  v2.set(bytes(20_000, 99), 1_000_000); // 1% of the file changes
  const fake = fakeApi();
  await withFile(v1, async (path) => {
    await uploadMissing(path, await chunkArtifact(path, identity, SMALL), deps(fake.api));
  });
  fake.puts.length = 0;
  await withFile(v2, async (path) => {
    const manifest = await chunkArtifact(path, identity, SMALL);
    const summary = await uploadMissing(path, manifest, deps(fake.api));
    assert.ok(summary.bytes_uploaded > 0);
    assert.ok(
      summary.bytes_uploaded < 0.05 * manifest.size,
      `uploaded ${summary.bytes_uploaded} of ${manifest.size}`,
    );
    assert.equal(sha256(reassemble(manifest, fake.stored)), sha256(v2));
  });
});

Deno.test("uploadMissing() asks about at most 4096 digests per call", async () => {
  const tiny: ChunkerParams = { ...SMALL, min_size: 64, avg_size: 256, max_size: 1024 };
  await withFile(bytes(2_500_000, 3), async (path) => {
    const manifest = await chunkArtifact(path, identity, tiny);
    assert.ok(manifest.chunks.length > 4096);
    const fake = fakeApi();
    await uploadMissing(path, manifest, deps(fake.api));
    assert.ok(fake.missingCalls.length >= 2);
    assert.ok(fake.missingCalls.every((n) => n <= 4096));
  });
});

Deno.test("uploadMissing() re-reads and sends a chunk once more after a digest_mismatch", async () => {
  await withFile(bytes(100_000, 5), async (path) => {
    const manifest = await chunkArtifact(path, identity, SMALL);
    const first = manifest.chunks[0]!.digest;
    const mismatch = new ApiError(400, "digest_mismatch", "the body does not hash");
    const fake = fakeApi({ failPut: (d, n) => (d === first && n === 1 ? mismatch : undefined) });
    await uploadMissing(path, manifest, deps(fake.api));
    assert.equal(fake.puts.filter((d) => d === first).length, 2);

    const always = fakeApi({ failPut: (d) => (d === first ? mismatch : undefined) });
    await assert.rejects(uploadMissing(path, manifest, deps(always.api)), /digest_mismatch|hash/);
    assert.equal(always.puts.filter((d) => d === first).length, 2);
  });
});

Deno.test("uploadMissing() fails when an upload keeps failing", async () => {
  await withFile(bytes(100_000, 5), async (path) => {
    const manifest = await chunkArtifact(path, identity, SMALL);
    const fake = fakeApi({ failPut: () => new TransportError("connection reset") });
    await assert.rejects(uploadMissing(path, manifest, deps(fake.api)), TransportError);
  });
});

Deno.test("uploadMissing() refuses to send bytes that changed since chunking", async () => {
  await withFile(bytes(100_000, 5), async (path) => {
    const manifest = await chunkArtifact(path, identity, SMALL);
    await Deno.writeFile(path, bytes(100_000, 6));
    const fake = fakeApi();
    await assert.rejects(uploadMissing(path, manifest, deps(fake.api)), ArtifactChangedError);
    assert.equal(fake.puts.length, 0);
  });
});
