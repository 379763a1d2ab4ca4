/**
 * Chunks the agent already holds, in the releases it keeps: digest → (file, offset). A new
 * build reuses them instead of fetching them (successive builds share most chunks), and in
 * step 7 the agent serves peers from the same index, so every chunk is stored once.
 */
import { open } from "node:fs/promises";
import type { Manifest } from "../protocol/manifest.ts";

export interface LocalChunks {
  /** The bytes at the chunk's known place, unverified (the caller checks), or null. */
  read(digest: string, size: number): Promise<Uint8Array | null>;
}

export interface ChunkPlace {
  path: string;
  offset: number;
  size: number;
}

export class ReleaseChunks implements LocalChunks {
  readonly #places = new Map<string, ChunkPlace>();

  /** Indexes each release's file by its manifest. */
  constructor(releases: readonly { file: string; manifest: Manifest }[]) {
    for (const r of releases) {
      let offset = 0;
      for (const c of r.manifest.chunks) {
        if (!this.#places.has(c.digest))
          this.#places.set(c.digest, { path: r.file, offset, size: c.size });
        offset += c.size;
      }
    }
  }

  get size(): number {
    return this.#places.size;
  }

  place(digest: string): ChunkPlace | undefined {
    return this.#places.get(digest);
  }

  async read(digest: string, size: number): Promise<Uint8Array | null> {
    const place = this.#places.get(digest);
    if (!place || place.size !== size) return null;
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(place.path, "r");
    } catch {
      return null; // pruned meanwhile
    }
    try {
      const out = new Uint8Array(size);
      let at = 0;
      while (at < size) {
        const { bytesRead } = await file.read(out, at, size - at, place.offset + at);
        if (bytesRead === 0) return null;
        at += bytesRead;
      }
      return out;
    } finally {
      await file.close();
    }
  }
}
