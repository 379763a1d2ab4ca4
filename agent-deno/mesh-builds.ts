/**
 * The builds this agent can serve peers from: each chunk's place in the partial file while it
 * downloads, in the installed release afterwards (the same bytes, renamed: stored once). Only
 * chunks whose bit is set are served, and a bit is set only after the chunk was verified and
 * written, so a peer never gets bytes this agent did not check.
 */
import { open } from "node:fs/promises";
import { pieceRoom } from "../protocol/peer-wire.ts";
import type { DownloadStart } from "./piece-source.ts";

export interface MeshBuild extends DownloadStart {
  offsets: number[];
  /** Chunks fetched (not reused) in this download: the picker's "first few at random". */
  fetched: number;
  /** Chunks neither done nor in flight at the last pick. */
  remaining: number;
  active: boolean;
}

/** Builds kept for serving, most recent last. */
const MAX_BUILDS = 8;

export class MeshBuilds {
  readonly #builds = new Map<number, MeshBuild>();

  /** A downloaded release: every chunk verified (the whole file's hash was checked). */
  addRelease(buildId: number, sizes: readonly number[], file: string): void {
    if (this.#builds.has(buildId)) return;
    const done = new Uint8Array(Math.ceil(sizes.length / 8)).fill(0xff);
    if (sizes.length % 8 !== 0) done[done.length - 1] = (1 << (sizes.length % 8)) - 1;
    const build = this.add({ buildId, sizes, done, partialPath: file, releasePath: file });
    build.active = false;
  }

  add(start: DownloadStart): MeshBuild {
    const offsets: number[] = [];
    let at = 0;
    for (const size of start.sizes) {
      offsets.push(at);
      at += size;
    }
    const build: MeshBuild = {
      ...start,
      offsets,
      fetched: 0,
      remaining: start.sizes.length,
      active: true,
    };
    this.#builds.delete(start.buildId);
    this.#builds.set(start.buildId, build);
    for (const id of this.#builds.keys()) {
      if (this.#builds.size <= MAX_BUILDS) break;
      this.#builds.delete(id);
    }
    return build;
  }

  get(buildId: number): MeshBuild | undefined {
    return this.#builds.get(buildId);
  }

  all(): IterableIterator<MeshBuild> {
    return this.#builds.values();
  }

  /** Verified bytes of chunk `index` of `buildId`, or null when this agent does not hold it. */
  async read(buildId: number, index: number): Promise<Uint8Array | null> {
    const b = this.#builds.get(buildId);
    const size = b?.sizes[index];
    if (!b || size === undefined || ((b.done[index >> 3] ?? 0) & (1 << (index & 7))) === 0) {
      return null;
    }
    for (const path of [b.partialPath, b.releasePath]) {
      const bytes = await readAt(path, b.offsets[index]!, size);
      if (bytes) return bytes;
    }
    return null;
  }
}

async function readAt(path: string, offset: number, size: number): Promise<Uint8Array | null> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, "r");
  } catch {
    return null; // renamed into its release meanwhile, or pruned
  }
  try {
    // Read where the piece frame will carry it (protocol/peer-wire.ts), so it is not copied.
    const out = pieceRoom(size);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await file.read(out, at, size - at, offset + at);
      if (bytesRead === 0) return null;
      at += bytesRead;
    }
    return out;
  } finally {
    await file.close();
  }
}
