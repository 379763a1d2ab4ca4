/** A replication queue message: copy batch `seq` of `build_id`'s chunks into `region`. */
export interface ReplicationMessage {
  build_id: number;
  region: string;
  seq: number;
}

/** Chunks per batch: bounded work per message (≤ 32 × 16 MiB, typically ~128 MiB). */
export const BATCH_CHUNKS = 32;
/** R2 operations in flight at once while copying (DESIGN: at most 6 connections). */
export const COPY_CONCURRENCY = 6;
/** Attempts at a batch before its region shows FAILED (retry it with the API). */
export const MAX_BATCH_ATTEMPTS = 5;
