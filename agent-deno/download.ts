/**
 * Assembles one build's file (DESIGN section 8, "agent install"): every chunk is written into a
 * partial file at its offset, taken from a release already on disk when one holds it, else from
 * the piece source; each chunk's sha256 is checked before it is written, and the chunks done are
 * recorded in Deno KV after each write, so a restarted agent resumes without fetching a verified
 * chunk again. At the end the whole file's sha256 is checked; chunks that fail a re-check (a
 * torn write before a crash) are fetched again once.
 */
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { Backoff, sleep } from "../protocol/backoff.ts";
import type { Manifest } from "../protocol/manifest.ts";
import type { AppProgress } from "../protocol/relay-messages.ts";
import { bitfield, type DownloadProgress, hasBit, setBit } from "./agent-state.ts";
import type { LocalChunks } from "./local-chunks.ts";
import { errorText, type Logger } from "./log.ts";
import { type PieceRequest, type PieceSource, PieceUnavailable } from "./piece-source.ts";

export interface ProgressStore {
  get(): Promise<DownloadProgress | null>;
  set(progress: DownloadProgress): Promise<void>;
}

export interface DownloadOptions {
  app: string;
  manifest: Manifest;
  /** Its canonical digest: progress recorded for another manifest is not reused. */
  manifestDigest: string;
  partialPath: string;
  progress: ProgressStore;
  local: LocalChunks;
  source: PieceSource;
  concurrency: number;
  logger: Logger;
  onProgress: (progress: AppProgress) => void;
  signal: AbortSignal;
  /** Tries per chunk before the download fails (the caller retries the deploy later). Default 6. */
  attempts?: number;
  /** Where the installed file will be (a mesh serves peers from there after the rename). */
  releasePath?: string;
}

export interface DownloadResult {
  bytesFetched: number;
  bytesReused: number;
  chunksFetched: number;
  chunksReused: number;
}

/** Throws when the file cannot be assembled now; what was verified stays recorded. */
export async function downloadBuild(o: DownloadOptions): Promise<DownloadResult> {
  const started = Date.now();
  const m = o.manifest;
  const offsets: number[] = [];
  for (let i = 0, at = 0; i < m.chunks.length; at += m.chunks[i]!.size, i++) offsets.push(at);
  const saved = await o.progress.get();
  const fresh =
    !saved || saved.manifest_digest !== o.manifestDigest || !(await sizeIs(o.partialPath, m.size));
  const done = fresh ? bitfield(m.chunks.length) : saved.done;
  const file = await open(o.partialPath, fresh ? "w+" : "r+");
  const result: DownloadResult = {
    bytesFetched: 0,
    bytesReused: 0,
    chunksFetched: 0,
    chunksReused: 0,
  };
  try {
    if (fresh) {
      await file.truncate(m.size);
      await o.progress.set({ manifest_digest: o.manifestDigest, done });
    }
    // Progress is written after each chunk, in order, never failing the download: a lost
    // write only means that chunk is fetched again after a restart.
    let saving = Promise.resolve();
    const persist = () => {
      const snapshot = { manifest_digest: o.manifestDigest, done: done.slice() };
      saving = saving.then(() => o.progress.set(snapshot)).catch(() => {});
      return saving;
    };
    const report = () => o.onProgress(progressOf(m, done));
    const count = m.chunks.filter((_, i) => hasBit(done, i)).length;
    o.logger.log("info", "download:started", {
      app: o.app,
      build_id: m.build_id,
      chunks_total: m.chunks.length,
      chunks_done: count,
      bytes_total: m.size,
    });
    report();
    for (let round = 0; ; round++) {
      await fill(o, file, offsets, done, result, persist, report);
      await persist();
      await file.sync();
      if ((await hashOf(file, m.size)) === m.sha256) break;
      const bad = await recheck(file, m, offsets, done);
      o.logger.log("warn", "download:hash-mismatch", {
        app: o.app,
        build_id: m.build_id,
        bad_chunks: bad,
      });
      await persist();
      if (bad === 0 || round >= 1) {
        throw new Error(
          `build ${m.build_id}: the assembled file does not hash to the manifest's sha256`,
        );
      }
    }
  } finally {
    await file.close();
  }
  o.logger.log("info", "download:finished", {
    app: o.app,
    build_id: m.build_id,
    bytes_fetched: result.bytesFetched,
    bytes_reused: result.bytesReused,
    ms: Date.now() - started,
  });
  return result;
}

/** Fetches every chunk not done, `concurrency` at a time; a digest listed twice is fetched once. */
async function fill(
  o: DownloadOptions,
  file: FileHandle,
  offsets: number[],
  done: Uint8Array,
  result: DownloadResult,
  persist: () => Promise<void>,
  report: () => void,
): Promise<void> {
  const byDigest = new Map<string, number[]>();
  o.manifest.chunks.forEach((c, i) => {
    if (!hasBit(done, i)) byDigest.set(c.digest, [...(byDigest.get(c.digest) ?? []), i]);
  });
  const queue = [...byDigest.entries()];
  const tracking = o.source.begin?.({
    buildId: o.manifest.build_id,
    sizes: o.manifest.chunks.map((c) => c.size),
    done,
    partialPath: o.partialPath,
    releasePath: o.releasePath ?? o.partialPath,
  });
  // Without a tracking source, in manifest order; with one, in the order it picks.
  const take = () => {
    if (!tracking || queue.length === 0) return queue.shift();
    const at = tracking.pick(queue.map(([, indices]) => indices[0]!));
    return queue.splice(at, 1)[0];
  };
  const worker = async () => {
    for (let next = take(); next; next = take()) {
      o.signal.throwIfAborted();
      const [digest, indices] = next;
      const size = o.manifest.chunks[indices[0]!]!.size;
      const piece = { digest, size, buildId: o.manifest.build_id, index: indices[0]! };
      const bytes = await obtain(o, file, offsets, done, piece, result);
      for (const i of indices) await writeAll(file, bytes, offsets[i]!);
      for (const i of indices) setBit(done, i);
      for (const i of indices) tracking?.done(i);
      void persist();
      report();
    }
  };
  const workers = Array.from({ length: Math.min(o.concurrency, queue.length) }, worker);
  const settled = await Promise.allSettled(workers);
  tracking?.end();
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
}

/** A chunk's verified bytes: from this file (a duplicate), a kept release, or the source. */
async function obtain(
  o: DownloadOptions,
  file: FileHandle,
  offsets: number[],
  done: Uint8Array,
  piece: PieceRequest,
  result: DownloadResult,
): Promise<Uint8Array> {
  const twin = o.manifest.chunks.findIndex((c, i) => c.digest === piece.digest && hasBit(done, i));
  const local =
    twin >= 0
      ? await readAt(file, offsets[twin]!, piece.size)
      : await o.local.read(piece.digest, piece.size);
  if (local && sha256(local) === piece.digest) {
    result.bytesReused += piece.size;
    result.chunksReused++;
    o.logger.log("debug", "chunk:reused", { app: o.app, build_id: o.manifest.build_id, ...piece });
    return local;
  }
  const backoff = new Backoff({ baseMs: 500, maxMs: 8_000 });
  const attempts = o.attempts ?? 6;
  for (let attempt = 1; ; attempt++) {
    try {
      const { bytes, from } = await o.source.fetchPiece(piece, o.signal);
      const got = sha256(bytes);
      if (got === piece.digest) {
        result.bytesFetched += piece.size;
        result.chunksFetched++;
        o.logger.log("debug", "chunk:fetched", {
          app: o.app,
          build_id: o.manifest.build_id,
          ...piece,
          source: from,
        });
        return bytes;
      }
      const reason = `bytes hash to ${got}`;
      o.source.reportBad?.(piece, from, reason);
      o.logger.log("warn", "chunk:refused", {
        app: o.app,
        build_id: o.manifest.build_id,
        digest: piece.digest,
        source: from,
        reason,
      });
      if (attempt >= attempts)
        throw new PieceUnavailable(`chunk ${piece.digest}: no good bytes after ${attempts} tries`);
      continue; // the source now tries someone else first: no need to wait
    } catch (err) {
      if (o.signal.aborted) throw err;
      if (!(err instanceof PieceUnavailable) || attempt >= attempts) throw err;
      o.logger.log("warn", "chunk:refused", {
        app: o.app,
        build_id: o.manifest.build_id,
        digest: piece.digest,
        source: o.source.name,
        reason: errorText(err),
      });
    }
    if (attempt >= attempts) {
      throw new PieceUnavailable(`chunk ${piece.digest}: no good bytes after ${attempts} tries`);
    }
    await sleep(backoff.next(), o.signal);
  }
}

/** Re-hashes every chunk marked done; clears the bits of those that fail. Returns how many. */
async function recheck(
  file: FileHandle,
  m: Manifest,
  offsets: number[],
  done: Uint8Array,
): Promise<number> {
  let bad = 0;
  for (const [i, c] of m.chunks.entries()) {
    if (!hasBit(done, i)) continue;
    const bytes = await readAt(file, offsets[i]!, c.size);
    if (!bytes || sha256(bytes) !== c.digest) {
      setBit(done, i, false);
      bad++;
    }
  }
  return bad;
}

function progressOf(m: Manifest, done: Uint8Array): AppProgress {
  let chunks = 0;
  let bytes = 0;
  m.chunks.forEach((c, i) => {
    if (hasBit(done, i)) {
      chunks++;
      bytes += c.size;
    }
  });
  return {
    chunks_done: chunks,
    chunks_total: m.chunks.length,
    bytes_done: bytes,
    bytes_total: m.size,
  };
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function hashOf(file: FileHandle, size: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(1 << 20);
  for (let at = 0; at < size; ) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - at), at);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest("hex");
}

export async function readAt(
  file: FileHandle,
  offset: number,
  size: number,
): Promise<Uint8Array | null> {
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const { bytesRead } = await file.read(out, at, size - at, offset + at);
    if (bytesRead === 0) return null;
    at += bytesRead;
  }
  return out;
}

async function writeAll(file: FileHandle, bytes: Uint8Array, offset: number): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, at, bytes.length - at, offset + at);
    at += bytesWritten;
  }
}

async function sizeIs(path: string, size: number): Promise<boolean> {
  return await Deno.stat(path).then(
    (s) => s.size === size,
    () => false,
  );
}
