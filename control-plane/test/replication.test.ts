import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../protocol/hash.ts";
import { buildManifest } from "../../protocol/manifest.ts";
import { bucketFor } from "../src/artifacts/buckets.ts";
import { chunkReplicas, chunks as chunksTable } from "../src/db/schema.ts";
import { copyBatch } from "../src/replication/copy-batch.ts";
import { claimOne, queueBuild, registerApp, TEST_CHUNKER } from "./fixtures.ts";
import { call, db, mintToken, resetDb, testEnv } from "./helpers.ts";

let admin: string;
let deployer: string;
let builder: string;
let relay: string;
const REGIONS = ["us-east", "eu-west", "ap-south"];
const bucket = (r: string) => bucketFor(testEnv, r);

beforeAll(async () => {
  await resetDb();
  admin = await mintToken("admin");
  deployer = await mintToken("deployer");
  builder = await mintToken("builder");
  relay = await mintToken("relay", { region: "eu-west" });
  await registerApp(admin, "rep");
});

interface Chunk {
  digest: string;
  size: number;
  bytes: Uint8Array;
}

async function makeChunks(seed: number, n: number, size = 1500): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = new TextEncoder().encode(
      `${seed}:${i}:`.padEnd(size, String.fromCharCode(97 + ((seed + i) % 26))),
    );
    out.push({ digest: await sha256Hex(bytes), size: bytes.length, bytes });
  }
  return out;
}

/** Puts chunks straight into the primary bucket and records them, as uploads would. */
async function seedPrimary(chunks: Chunk[]): Promise<void> {
  for (const c of chunks) await bucket("us-east").put(`chunks/${c.digest}`, c.bytes);
  for (let i = 0; i < chunks.length; i += 200) {
    const slice = chunks.slice(i, i + 200);
    await db
      .insert(chunksTable)
      .values(slice.map((c) => ({ digest: c.digest, size: c.size })))
      .onConflictDoNothing();
    await db
      .insert(chunkReplicas)
      .values(slice.map((c) => ({ digest: c.digest, region: "us-east" })))
      .onConflictDoNothing();
  }
}

const params = { ...TEST_CHUNKER, min_size: 64, avg_size: 256, max_size: 2048 };

/** Builds, uploads and completes a build whose artifact is `chunks` in order. */
async function succeed(chunks: Chunk[], opts: { seed?: boolean } = {}): Promise<number> {
  if (opts.seed !== false) await seedPrimary(chunks);
  const id = await queueBuild(deployer, "rep");
  const c = (await claimOne(builder))!;
  expect(c.id).toBe(id);
  const whole = new Uint8Array(chunks.reduce((n, ch) => n + ch.size, 0));
  let off = 0;
  for (const ch of chunks) {
    whole.set(ch.bytes, off);
    off += ch.size;
  }
  const manifest = buildManifest(
    { app: "rep", build_id: id, commit_sha: c.commit },
    { chunks, sha256: await sha256Hex(whole), params },
  );
  const r = await call("POST", `/v1/worker/builds/${id}/complete`, {
    token: builder,
    body: { lease_token: c.lease, manifest },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return id;
}

interface Snapshot {
  deployable: boolean;
  percents: Record<string, number>;
  statuses: Record<string, string>;
}

async function watch(
  id: number,
  until: (s: Snapshot) => boolean,
  timeoutMs = 60_000,
): Promise<Snapshot[]> {
  const seen: Snapshot[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call("GET", `/v1/builds/${id}`, { token: deployer });
    const s: Snapshot = {
      deployable: r.body.deployable,
      percents: Object.fromEntries(r.body.replication.map((x: any) => [x.region, x.percent])),
      statuses: Object.fromEntries(r.body.replication.map((x: any) => [x.region, x.status])),
    };
    seen.push(s);
    if (until(s)) return seen;
    if (Date.now() > deadline)
      throw new Error(`build ${id} replication stuck: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("replication", () => {
  it("fills every region's bucket, progress only grows, and the build becomes deployable only then", async () => {
    const chunks = await makeChunks(1, 100);
    const id = await succeed(chunks);
    const seen = await watch(id, (s) => s.deployable);
    for (const region of REGIONS) {
      const series = seen.map((s) => s.percents[region] ?? 0);
      for (let i = 1; i < series.length; i++)
        expect(series[i]).toBeGreaterThanOrEqual(series[i - 1]!);
      expect(series.at(-1)).toBe(100);
      for (const ch of chunks)
        expect(
          await bucket(region).head(`chunks/${ch.digest}`),
          `${region} ${ch.digest}`,
        ).not.toBeNull();
      expect(await bucket(region).head(`manifests/${id}.json`)).not.toBeNull();
    }
    for (const s of seen) {
      if (s.deployable) expect(Object.values(s.statuses).every((x) => x === "COMPLETE")).toBe(true);
    }
    expect(seen.some((s) => !s.deployable)).toBe(true);
  });

  it("copies only the chunks a region lacks for a second build that shares most of them", async () => {
    const first = await makeChunks(2, 60);
    const id1 = await succeed(first);
    await watch(id1, (s) => s.deployable);
    const before = new Map<string, number>();
    for (const ch of first)
      before.set(
        ch.digest,
        (await bucket("eu-west").head(`chunks/${ch.digest}`))!.uploaded.getTime(),
      );
    const fresh = await makeChunks(3, 3);
    const second = [...first.slice(0, 57), ...fresh];
    const id2 = await succeed(second);
    await watch(id2, (s) => s.deployable);
    for (const region of ["eu-west", "ap-south"]) {
      const [{ n }] = (await db.all(
        sql`SELECT coalesce(sum(json_array_length(chunks)), 0) AS n FROM replication_batches WHERE build_id = ${id2} AND region = ${region}`,
      )) as [{ n: number }];
      expect(n, region).toBe(3);
    }
    for (const ch of first.slice(0, 57)) {
      expect((await bucket("eu-west").head(`chunks/${ch.digest}`))!.uploaded.getTime()).toBe(
        before.get(ch.digest),
      );
    }
  });

  it("retries a copy that fails transiently, and completes", async () => {
    const chunks = await makeChunks(4, 10);
    await seedPrimary(chunks);
    await db.run(sql`INSERT INTO replications (build_id, region, status, chunks_total, bytes_total, chunks_present, bytes_present)
                     VALUES (900001, 'ap-south', 'PENDING', 10, ${10 * 1500}, 0, 0)`);
    await db.run(sql`INSERT INTO replication_batches (build_id, region, seq, chunks, bytes)
                     VALUES (900001, 'ap-south', 0, ${JSON.stringify(chunks.map(({ digest, size }) => ({ digest, size })))}, ${10 * 1500})`);
    let puts = 0;
    const target = bucket("ap-south");
    // Fault injection around the real bucket: the third put fails as a dropped connection would.
    const flaky = new Proxy(target, {
      get(t, prop) {
        if (prop === "put") {
          return (...args: Parameters<R2Bucket["put"]>) => {
            if (++puts === 3) return Promise.reject(new Error("network connection lost"));
            return t.put(...args);
          };
        }
        const v = Reflect.get(t, prop);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const msg = { build_id: 900001, region: "ap-south", seq: 0 };
    const first = await copyBatch({ db, source: bucket("us-east"), target: flaky }, msg, 1);
    expect(first).toMatchObject({ kind: "retry", error: "network connection lost" });
    const second = await copyBatch({ db, source: bucket("us-east"), target: flaky }, msg, 2);
    expect(second).toMatchObject({ kind: "done", regionComplete: true });
    for (const ch of chunks) expect(await target.head(`chunks/${ch.digest}`)).not.toBeNull();
  });

  it("shows a region that cannot be filled as FAILED with the reason, and can retry it", async () => {
    const chunks = await makeChunks(5, 5);
    await seedPrimary(chunks);
    const lost = chunks[2]!;
    await bucket("us-east").delete(`chunks/${lost.digest}`);
    // The primary's record still claims it: the copy finds the bucket disagreeing.
    const id = await succeed(chunks, { seed: false });
    const seen = await watch(
      id,
      (s) => s.statuses["eu-west"] === "FAILED" && s.statuses["ap-south"] === "FAILED",
      20_000,
    );
    expect(seen.at(-1)!.deployable).toBe(false);
    const detail = await call("GET", `/v1/builds/${id}`, { token: deployer });
    const euWest = detail.body.replication.find((r: any) => r.region === "eu-west");
    expect(euWest.error).toContain(`chunk ${lost.digest} is missing from the primary bucket`);
    await bucket("us-east").put(`chunks/${lost.digest}`, lost.bytes);
    const retry = await call("POST", `/v1/builds/${id}/replication/retry`, {
      token: deployer,
      body: {},
    });
    expect(retry.status).toBe(200);
    await watch(id, (s) => s.deployable);
    const again = await call("POST", `/v1/builds/${id}/replication/retry`, {
      token: deployer,
      body: {},
    });
    expect(again.status).toBe(409);
  });

  it("replicates a build of thousands of chunks across many bounded invocations", async () => {
    const chunks = await makeChunks(6, 2000, 100);
    const id = await succeed(chunks);
    const [{ batches }] = (await db.all(
      sql`SELECT count(*) AS batches FROM replication_batches WHERE build_id = ${id}`,
    )) as [{ batches: number }];
    expect(batches).toBe(2 * Math.ceil(2000 / 32));
    await watch(id, (s) => s.deployable, 120_000);
    for (const ch of chunks.filter((_, i) => i % 97 === 0)) {
      expect(await bucket("ap-south").head(`chunks/${ch.digest}`)).not.toBeNull();
    }
  }, 150_000);
});

describe("GET /v1/regions/:region/chunks/:digest", () => {
  it("streams a chunk from that region's bucket to a relay of that region only", async () => {
    const [ch] = await makeChunks(7, 1);
    await bucket("eu-west").put(`chunks/${ch!.digest}`, ch!.bytes);
    const r = await fetchChunk("eu-west", ch!.digest, relay);
    expect(r.status).toBe(200);
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(ch!.bytes);
    expect((await fetchChunk("ap-south", ch!.digest, relay)).status).toBe(403);
    expect((await fetchChunk("eu-west", "f".repeat(64), relay)).status).toBe(404);
    expect((await fetchChunk("eu-west", ch!.digest, deployer)).status).toBe(403);
    expect((await fetchChunk("mars", ch!.digest, admin)).status).toBe(404);
  });

  it("lists regions with the primary first", async () => {
    const r = await call("GET", "/v1/regions", { token: relay });
    expect(r.body.regions.map((x: any) => [x.name, x.primary])).toEqual([
      ["us-east", true],
      ["eu-west", false],
      ["ap-south", false],
    ]);
  });
});

async function fetchChunk(region: string, digest: string, token: string): Promise<Response> {
  const { exports } = await import("cloudflare:workers");
  return (exports as any).default.fetch(`http://cp.test/v1/regions/${region}/chunks/${digest}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
}
