import assert from "node:assert/strict";
import type { DownloadProgress } from "./agent-state.ts";
import { type DownloadOptions, downloadBuild, type ProgressStore } from "./download.ts";
import { type LocalChunks, ReleaseChunks } from "./local-chunks.ts";
import { silentLogger } from "./log.ts";
import { PieceUnavailable } from "./piece-source.ts";
import { buildOf, MapSource, randomBytes, sha256 } from "./test-fixtures.ts";

function memoryProgress(): ProgressStore & { value: DownloadProgress | null } {
  const store = {
    value: null as DownloadProgress | null,
    get: () => Promise.resolve(store.value && { ...store.value, done: store.value.done.slice() }),
    set: (p: DownloadProgress) => {
      store.value = { ...p, done: p.done.slice() };
      return Promise.resolve();
    },
  };
  return store;
}

const noLocal: LocalChunks = { read: () => Promise.resolve(null) };

type Options = DownloadOptions & { source: MapSource; progress: ReturnType<typeof memoryProgress> };

function options(
  dir: string,
  build: Awaited<ReturnType<typeof buildOf>>,
  over: Partial<Omit<DownloadOptions, "source" | "progress">> & { source?: MapSource } = {},
): Options {
  return {
    app: "web",
    manifest: build.manifest,
    manifestDigest: build.digest,
    partialPath: `${dir}/web.part`,
    local: noLocal,
    concurrency: 3,
    logger: silentLogger,
    onProgress: () => {},
    signal: new AbortController().signal,
    ...over,
    source: over.source ?? new MapSource(build.chunks),
    progress: memoryProgress(),
  };
}

Deno.test("downloadBuild() assembles the file at its offsets, fetching each distinct chunk once", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = randomBytes(200_000, 1);
  const build = await buildOf("web", 1, bytes);
  const reports: number[] = [];
  const o = options(dir, build, { onProgress: (p) => reports.push(p.chunks_done) });
  const result = await downloadBuild(o);
  assert.deepEqual(await Deno.readFile(o.partialPath), bytes);
  assert.equal(o.source.requests.length, build.chunks.size);
  assert.equal(result.bytesFetched, bytes.length);
  assert.equal(reports.at(-1), build.manifest.chunks.length);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downloadBuild() resumes after a crash without fetching a verified chunk again", async () => {
  const dir = await Deno.makeTempDir();
  const build = await buildOf("web", 1, randomBytes(300_000, 2));
  const crash = new AbortController();
  const source = new MapSource(build.chunks);
  source.crashAfter = { count: 10, abort: crash };
  const o = options(dir, build, { source, signal: crash.signal, concurrency: 1 });
  await assert.rejects(downloadBuild(o));
  const doneBefore = build.manifest.chunks.filter(
    (_, i) => ((o.progress.value!.done[i >> 3]! >> (i & 7)) & 1) === 1,
  );
  assert.equal(doneBefore.length, 10);
  const again = new MapSource(build.chunks);
  await downloadBuild({ ...o, source: again, signal: new AbortController().signal });
  assert.equal(sha256(await Deno.readFile(o.partialPath)), build.manifest.sha256);
  for (const c of doneBefore)
    assert.ok(!again.requests.includes(c.digest), "a verified chunk was fetched again");
  assert.equal(again.requests.length, build.chunks.size - 10);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downloadBuild() refuses wrong bytes, reports the source, and fetches the chunk again", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = randomBytes(50_000, 3);
  const build = await buildOf("web", 1, bytes);
  const source = new MapSource(build.chunks);
  const victim = build.manifest.chunks[1]!.digest;
  source.lies.set(victim, 2);
  const o = options(dir, build, { source });
  await downloadBuild(o);
  assert.deepEqual(await Deno.readFile(o.partialPath), bytes);
  assert.deepEqual(source.bad, [`liar:${victim}`, `liar:${victim}`]);
  assert.equal(source.requests.filter((d) => d === victim).length, 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downloadBuild() reuses the chunks a kept release holds", async () => {
  const dir = await Deno.makeTempDir();
  const old = randomBytes(120_000, 4);
  const next = old.slice();
  next.set(randomBytes(5_000, 5), 60_000); // a small change in the middle
  const oldBuild = await buildOf("web", 1, old);
  const newBuild = await buildOf("web", 2, next);
  await Deno.writeFile(`${dir}/old`, old);
  const local = new ReleaseChunks([{ file: `${dir}/old`, manifest: oldBuild.manifest }]);
  const o = options(dir, newBuild, { local });
  const result = await downloadBuild(o);
  assert.deepEqual(await Deno.readFile(o.partialPath), next);
  const shared = newBuild.manifest.chunks.filter((c) => oldBuild.chunks.has(c.digest)).length;
  assert.ok(shared > 0);
  assert.equal(o.source.requests.length, newBuild.manifest.chunks.length - shared);
  assert.ok(result.bytesReused > result.bytesFetched, JSON.stringify(result));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downloadBuild() re-checks chunks when the whole file's hash is wrong and fetches the bad ones", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = randomBytes(80_000, 6);
  const build = await buildOf("web", 1, bytes);
  const crash = new AbortController();
  const source = new MapSource(build.chunks);
  source.crashAfter = { count: 4, abort: crash };
  const o = options(dir, build, { source, signal: crash.signal, concurrency: 1 });
  await assert.rejects(downloadBuild(o));
  // A torn write: the first chunk is marked done but its bytes on disk are wrong.
  const file = await Deno.open(o.partialPath, { write: true });
  await file.write(new Uint8Array(100).fill(0x55));
  file.close();
  const again = new MapSource(build.chunks);
  await downloadBuild({ ...o, source: again, signal: new AbortController().signal });
  assert.deepEqual(await Deno.readFile(o.partialPath), bytes);
  assert.ok(again.requests.includes(build.manifest.chunks[0]!.digest));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downloadBuild() gives up with PieceUnavailable when no source has a chunk", async () => {
  const dir = await Deno.makeTempDir();
  const build = await buildOf("web", 1, randomBytes(10_000, 7));
  const source = new MapSource(build.chunks);
  source.down = true;
  const o = options(dir, build, { source, attempts: 2 });
  await assert.rejects(downloadBuild(o), PieceUnavailable);
  await Deno.remove(dir, { recursive: true });
});
