import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type CacheIndex, ChunkCache, ChunkUnavailable, memoryCacheIndex } from "./chunk-cache.ts";
import { silentLogger } from "./log.ts";
import { Metrics } from "./metrics.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const bytes = (seed: number, size: number) =>
  Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed * 7) & 0xff);

interface Upstream {
  blobs: Map<string, Uint8Array>;
  reads: string[];
  /** Bytes to send instead of the real ones, per digest. */
  corrupt: Set<string>;
  delayMs: number;
}

function upstream(...blobs: Uint8Array[]): Upstream {
  return {
    blobs: new Map(blobs.map((b) => [sha(b), b])),
    reads: [],
    corrupt: new Set(),
    delayMs: 0,
  };
}

class NotFound extends Error {}

function cache(
  dir: string,
  up: Upstream,
  opts: { maxBytes?: number; index?: CacheIndex; metrics?: Metrics } = {},
) {
  return new ChunkCache({
    dir,
    maxBytes: opts.maxBytes ?? 1 << 20,
    index: opts.index ?? memoryCacheIndex(),
    fetchChunk: async (digest) => {
      up.reads.push(digest);
      await new Promise((r) => setTimeout(r, up.delayMs));
      const blob = up.blobs.get(digest);
      if (!blob) throw new NotFound(digest);
      const body = up.corrupt.has(digest) ? blob.map((b) => b ^ 1) : blob;
      return new Response(body as Uint8Array<ArrayBuffer>);
    },
    isNotFound: (err) => err instanceof NotFound,
    logger: silentLogger,
    metrics: opts.metrics ?? new Metrics(),
  });
}

async function readAll(c: ChunkCache, digest: string): Promise<Uint8Array> {
  const { file } = await c.openChunk(digest);
  return new Uint8Array(await new Response(file.readable).arrayBuffer());
}

Deno.test("ChunkCache.openChunk() reads a chunk upstream once however many ask at the same time", async () => {
  const dir = await Deno.makeTempDir();
  const blob = bytes(1, 100_000);
  const up = upstream(blob);
  up.delayMs = 50;
  const metrics = new Metrics();
  const c = cache(dir, up, { metrics });
  await c.load();
  const got = await Promise.all([1, 2, 3].map(() => readAll(c, sha(blob))));
  for (const g of got) assert.deepEqual(g, blob);
  assert.deepEqual(await readAll(c, sha(blob)), blob);
  assert.equal(up.reads.length, 1);
  assert.equal(metrics.get("relay_upstream_reads_total"), 1);
  assert.equal(metrics.get("relay_cache_bytes"), 100_000);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ChunkCache refuses upstream bytes that do not match the digest and keeps nothing", async () => {
  const dir = await Deno.makeTempDir();
  const blob = bytes(2, 5000);
  const up = upstream(blob);
  up.corrupt.add(sha(blob));
  const c = cache(dir, up);
  await c.load();
  await assert.rejects(
    c.openChunk(sha(blob)),
    (err) => err instanceof ChunkUnavailable && err.status === 502,
  );
  assert.equal(c.has(sha(blob)), false);
  assert.equal(c.bytes, 0);
  up.corrupt.clear();
  assert.deepEqual(await readAll(c, sha(blob)), blob); // a later request reads it again
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ChunkCache answers 404 for a chunk the region's bucket lacks", async () => {
  const dir = await Deno.makeTempDir();
  const c = cache(dir, upstream());
  await c.load();
  await assert.rejects(
    c.openChunk("a".repeat(64)),
    (err) => err instanceof ChunkUnavailable && err.status === 404,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ChunkCache evicts the least recently used chunks to stay within its budget", async () => {
  const dir = await Deno.makeTempDir();
  const [a, b, c3] = [bytes(3, 400_000), bytes(4, 400_000), bytes(5, 400_000)];
  const up = upstream(a, b, c3);
  const c = cache(dir, up, { maxBytes: 900_000 });
  await c.load();
  await c.ensure(sha(a));
  await c.ensure(sha(b));
  await c.ensure(sha(a)); // a is now more recent than b
  await c.ensure(sha(c3));
  assert.equal(c.has(sha(a)), true);
  assert.equal(c.has(sha(b)), false, "b was the least recently used");
  assert.equal(c.has(sha(c3)), true);
  assert.equal(c.bytes, 800_000);
  await assert.rejects(
    Deno.stat(`${dir}/chunks/${sha(b).slice(0, 2)}/${sha(b)}`),
    Deno.errors.NotFound,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ChunkCache.load() recovers its index after a restart and drops what the disk lost", async () => {
  const dir = await Deno.makeTempDir();
  const [a, b] = [bytes(6, 3000), bytes(7, 4000)];
  const up = upstream(a, b);
  const index = memoryCacheIndex();
  const first = cache(dir, up, { index });
  await first.load();
  await first.ensure(sha(a));
  await first.ensure(sha(b));
  await Deno.remove(`${dir}/chunks/${sha(b).slice(0, 2)}/${sha(b)}`);
  await Deno.writeFile(`${dir}/chunks/${sha(a).slice(0, 2)}/stray`, new Uint8Array(10));
  const second = cache(dir, up, { index });
  await second.load();
  assert.equal(second.has(sha(a)), true);
  assert.equal(second.has(sha(b)), false);
  assert.equal(second.bytes, 3000);
  assert.deepEqual(await readAll(second, sha(a)), a);
  assert.equal(up.reads.length, 2, "a came from disk, not upstream");
  await assert.rejects(
    Deno.stat(`${dir}/chunks/${sha(a).slice(0, 2)}/stray`),
    Deno.errors.NotFound,
  );
  await Deno.remove(dir, { recursive: true });
});
