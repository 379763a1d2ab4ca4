import type { ByteSource } from "./byte-source.ts";
import { type ChunkWithBytes, chunkStream } from "./chunker.ts";
import { type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from "./chunker-params.ts";
import { toHex } from "./encoding.ts";
import { createSha256, type IncrementalHash } from "./hash.ts";
import {
  buildManifest,
  type Manifest,
  type ManifestChunk,
  type ManifestIdentity,
} from "./manifest.ts";

export interface ManifestFromStreamOptions {
  /** Default `DEFAULT_CHUNKER_PARAMS`. */
  readonly params?: ChunkerParams;
  /**
   * The whole-file hasher. Default: the portable SHA-256 (about 250 MB/s); programs pass their
   * runtime's native one, e.g. `() => createHash("sha256")` from `node:crypto` (about 2 GB/s).
   */
  readonly createHasher?: () => IncrementalHash;
  /**
   * Called with each chunk and its bytes, in order, and awaited before the next one (the
   * build worker uploads here). Without it the chunker keeps no chunk bytes past hashing.
   */
  readonly onChunk?: (chunk: ChunkWithBytes) => Promise<void> | void;
}

/**
 * Chunks and hashes an artifact in one pass and returns its manifest (unsigned). Memory stays
 * bounded whatever the artifact's size (see `chunkStream`).
 */
export async function manifestFromStream(
  source: ByteSource,
  identity: ManifestIdentity,
  options: ManifestFromStreamOptions = {},
): Promise<Manifest> {
  const params = options.params ?? DEFAULT_CHUNKER_PARAMS;
  const hasher = (options.createHasher ?? createSha256)();
  const onChunk = options.onChunk;
  const chunks: ManifestChunk[] = [];
  if (onChunk) {
    for await (const chunk of chunkStream(source, { params, hasher, withBytes: true })) {
      await onChunk(chunk);
      chunks.push({ digest: chunk.digest, size: chunk.size });
    }
  } else {
    for await (const chunk of chunkStream(source, { params, hasher })) {
      chunks.push({ digest: chunk.digest, size: chunk.size });
    }
  }
  return buildManifest(identity, { params, chunks, sha256: toHex(hasher.digest()) });
}
