/**
 * The relay's chunk cache (DESIGN section 8, "the relay seeds"): a chunk is read from the
 * regional bucket through the control plane once, verified against its digest, kept on disk
 * and served from there. Concurrent requests for one chunk share one upstream read
 * (single-flight); the cache stays within its byte budget by evicting the least recently used
 * chunks. Unlinking a chunk that is being served is safe: an open file outlives its name.
 * The index (digest, size, last use) lives in Deno KV, so a restarted relay keeps its cache.
 */
import { createHash } from "node:crypto";
import { isDigest } from "../protocol/hash.ts";
import { errorText, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Largest chunk accepted from upstream: the chunker's 16 MiB maximum (DESIGN section 5). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** A chunk's last use is written to the index at most this often (reads are hot). */
const TOUCH_PERSIST_MS = 60_000;

export interface CacheEntry {
  digest: string;
  size: number;
  lastUsed: number;
}

/** Where the index persists: Deno KV in main.ts, memory in tests. */
export interface CacheIndex {
  load(): Promise<CacheEntry[]>;
  put(entry: CacheEntry): Promise<void>;
  delete(digest: string): Promise<void>;
}

/** Why a chunk could not be had; `status` is what the relay answers its agent. */
export class ChunkUnavailable extends Error {
  override readonly name = "ChunkUnavailable";
  constructor(
    readonly status: 404 | 502,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ChunkCacheOptions {
  dir: string;
  maxBytes: number;
  index: CacheIndex;
  /** Reads a chunk upstream: a 200 response with its bytes, or throws (an `UpstreamError` 404 means absent). */
  fetchChunk: (digest: string, signal: AbortSignal) => Promise<Response>;
  /** True when `err` from fetchChunk means the chunk is not in the region's bucket. */
  isNotFound: (err: unknown) => boolean;
  logger: Logger;
  metrics: Metrics;
  /** Upstream reads in flight at once. Default 8. */
  concurrency?: number;
  /** Per-read timeout. Default 120 s. */
  readTimeoutMs?: number;
  now?: () => number;
}

export class ChunkCache {
  readonly #o: ChunkCacheOptions;
  /** LRU order: the first entry is the least recently used. */
  readonly #entries = new Map<string, CacheEntry & { persistedAt: number }>();
  readonly #inflight = new Map<string, Promise<CacheEntry>>();
  #bytes = 0;
  #slots: number;
  readonly #queue: (() => void)[] = [];

  constructor(options: ChunkCacheOptions) {
    this.#o = options;
    this.#slots = options.concurrency ?? 8;
    options.metrics.gauge("relay_cache_bytes", () => this.#bytes);
    options.metrics.gauge("relay_cache_entries", () => this.#entries.size);
    options.metrics.set("relay_cache_max_bytes", options.maxBytes);
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(digest: string): boolean {
    return this.#entries.has(digest);
  }

  /** Loads the index and reconciles it with the disk: files without an entry, and entries without a file (or of the wrong size), go. */
  async load(): Promise<void> {
    await Deno.mkdir(`${this.#o.dir}/tmp`, { recursive: true });
    for await (const tmp of Deno.readDir(`${this.#o.dir}/tmp`)) {
      await Deno.remove(`${this.#o.dir}/tmp/${tmp.name}`).catch(() => {});
    }
    const entries = (await this.#o.index.load()).sort((a, b) => a.lastUsed - b.lastUsed);
    let dropped = 0;
    for (const entry of entries) {
      const size = await Deno.stat(this.#path(entry.digest)).then(
        (s) => s.size,
        () => -1,
      );
      if (size !== entry.size) {
        dropped++;
        await this.#o.index.delete(entry.digest);
        continue;
      }
      this.#entries.set(entry.digest, { ...entry, persistedAt: entry.lastUsed });
      this.#bytes += entry.size;
    }
    dropped += await this.#removeStrays();
    await this.#evict();
    this.#o.logger.log("info", "cache:loaded", {
      entries: this.#entries.size,
      bytes: this.#bytes,
      dropped,
    });
  }

  /**
   * Opens the cached chunk for reading, reading it upstream first if needed. The caller closes
   * the file. Throws ChunkUnavailable.
   */
  async openChunk(digest: string): Promise<{ file: Deno.FsFile; size: number }> {
    for (let attempt = 0; ; attempt++) {
      const entry = await this.ensure(digest);
      try {
        return { file: await Deno.open(this.#path(digest), { read: true }), size: entry.size };
      } catch (err) {
        // Evicted between ensure() and open(): rare; read it again once.
        if (!(err instanceof Deno.errors.NotFound) || attempt > 0) throw err;
      }
    }
  }

  /** The chunk's entry, read upstream (once, however many ask at the same time) if absent. */
  ensure(digest: string): Promise<CacheEntry> {
    if (!isDigest(digest)) return Promise.reject(new TypeError(`not a digest: ${digest}`));
    const entry = this.#entries.get(digest);
    if (entry) {
      this.#touch(entry);
      return Promise.resolve(entry);
    }
    let pending = this.#inflight.get(digest);
    if (!pending) {
      pending = this.#fill(digest).finally(() => this.#inflight.delete(digest));
      this.#inflight.set(digest, pending);
    }
    return pending;
  }

  #touch(entry: CacheEntry & { persistedAt: number }): void {
    const now = (this.#o.now ?? Date.now)();
    entry.lastUsed = now;
    this.#entries.delete(entry.digest);
    this.#entries.set(entry.digest, entry);
    if (now - entry.persistedAt >= TOUCH_PERSIST_MS) {
      entry.persistedAt = now;
      void this.#o.index
        .put({ digest: entry.digest, size: entry.size, lastUsed: now })
        .catch(() => {});
    }
  }

  async #fill(digest: string): Promise<CacheEntry> {
    await this.#acquire();
    const started = Date.now();
    const tmp = `${this.#o.dir}/tmp/${digest}.${crypto.randomUUID()}`;
    try {
      const size = await this.#download(digest, tmp);
      await Deno.mkdir(this.#dirOf(digest), { recursive: true });
      await Deno.rename(tmp, this.#path(digest));
      const now = (this.#o.now ?? Date.now)();
      const entry = { digest, size, lastUsed: now, persistedAt: now };
      await this.#o.index.put({ digest, size, lastUsed: now });
      this.#entries.set(digest, entry);
      this.#bytes += size;
      this.#o.metrics.inc("relay_upstream_reads_total");
      this.#o.metrics.inc("relay_upstream_bytes_total", size);
      this.#o.logger.log("info", "chunk:fetched", { digest, size, ms: Date.now() - started });
      await this.#evict(digest);
      return entry;
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      this.#o.metrics.inc("relay_upstream_read_failures_total");
      this.#o.logger.log("warn", "chunk:fetch-failed", { digest, error: errorText(err) });
      if (err instanceof ChunkUnavailable) throw err;
      if (this.#o.isNotFound(err)) {
        throw new ChunkUnavailable(404, `chunk ${digest} is not in the region's bucket (yet)`, {
          cause: err,
        });
      }
      throw new ChunkUnavailable(502, `chunk ${digest}: upstream read failed`, { cause: err });
    } finally {
      this.#release();
    }
  }

  /** Streams the chunk into `tmp`, hashing as it goes; returns its size once verified and synced. */
  async #download(digest: string, tmp: string): Promise<number> {
    const signal = AbortSignal.timeout(this.#o.readTimeoutMs ?? 120_000);
    const response = await this.#o.fetchChunk(digest, signal);
    const body = response.body;
    if (!body) throw new ChunkUnavailable(502, `chunk ${digest}: empty upstream response`);
    const hash = createHash("sha256");
    const file = await Deno.open(tmp, { write: true, createNew: true });
    let size = 0;
    try {
      for await (const piece of body) {
        size += piece.length;
        if (size > MAX_CHUNK_BYTES) {
          throw new ChunkUnavailable(
            502,
            `chunk ${digest}: upstream sent more than ${MAX_CHUNK_BYTES} bytes`,
          );
        }
        hash.update(piece);
        for (let off = 0; off < piece.length; ) off += await file.write(piece.subarray(off));
      }
      await file.syncData();
    } finally {
      file.close();
    }
    const got = hash.digest("hex");
    if (got !== digest) {
      throw new ChunkUnavailable(502, `chunk ${digest}: upstream bytes hash to ${got}`);
    }
    return size;
  }

  /** Evicts least recently used chunks until the cache fits its budget (never `keep`). */
  async #evict(keep?: string): Promise<void> {
    for (const entry of [...this.#entries.values()]) {
      if (this.#bytes <= this.#o.maxBytes) return;
      if (entry.digest === keep) continue;
      this.#entries.delete(entry.digest);
      this.#bytes -= entry.size;
      await Deno.remove(this.#path(entry.digest)).catch(() => {});
      await this.#o.index.delete(entry.digest).catch(() => {});
      this.#o.metrics.inc("relay_cache_evictions_total");
      this.#o.logger.log("info", "chunk:evicted", { digest: entry.digest, size: entry.size });
    }
  }

  async #removeStrays(): Promise<number> {
    let removed = 0;
    const root = `${this.#o.dir}/chunks`;
    await Deno.mkdir(root, { recursive: true });
    for await (const shard of Deno.readDir(root)) {
      if (!shard.isDirectory) continue;
      for await (const f of Deno.readDir(`${root}/${shard.name}`)) {
        if (!this.#entries.has(f.name)) {
          await Deno.remove(`${root}/${shard.name}/${f.name}`).catch(() => {});
          removed++;
        }
      }
    }
    return removed;
  }

  #dirOf(digest: string): string {
    return `${this.#o.dir}/chunks/${digest.slice(0, 2)}`;
  }

  #path(digest: string): string {
    return `${this.#dirOf(digest)}/${digest}`;
  }

  async #acquire(): Promise<void> {
    if (this.#slots > 0) {
      this.#slots--;
      return;
    }
    await new Promise<void>((resolve) => this.#queue.push(resolve));
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#slots++;
  }
}

/** The cache index in Deno KV: one key per chunk under ["cache", digest]. */
export function kvCacheIndex(kv: Deno.Kv): CacheIndex {
  return {
    async load() {
      const entries: CacheEntry[] = [];
      for await (const item of kv.list<CacheEntry>({ prefix: ["cache"] })) entries.push(item.value);
      return entries;
    },
    async put(entry) {
      await kv.set(["cache", entry.digest], entry);
    },
    async delete(digest) {
      await kv.delete(["cache", digest]);
    },
  };
}

export function memoryCacheIndex(): CacheIndex & { map: Map<string, CacheEntry> } {
  const map = new Map<string, CacheEntry>();
  return {
    map,
    load: () => Promise.resolve([...map.values()].map((e) => ({ ...e }))),
    put: (entry) => {
      map.set(entry.digest, { ...entry });
      return Promise.resolve();
    },
    delete: (digest) => {
      map.delete(digest);
      return Promise.resolve();
    },
  };
}
