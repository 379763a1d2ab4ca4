/**
 * Where an agent gets a chunk's bytes. The downloader asks a PieceSource and verifies what it
 * gets; it does not care whether the bytes came from a relay (step 6) or from mesh peers
 * (step 7: a source that routes requests to peers by rarity and falls back to the relay plugs
 * in here, and learns from `reportBad` which peer to ban).
 */

export interface PieceRequest {
  readonly digest: string;
  readonly size: number;
  /** Which build and chunk of its manifest (a mesh asks peers by these). */
  readonly buildId?: number;
  readonly index?: number;
}

/** A download in progress, as a source that chooses the order (the mesh) follows it. */
export interface DownloadTracking {
  /** Index into `remaining` (chunk indices neither done nor in flight) to fetch next. */
  pick(remaining: readonly number[]): number;
  /** Chunk `index` is verified and written to the partial file (peers may be served it). */
  done(index: number): void;
  /** The download ended (finished or failed). */
  end(): void;
}

export interface DownloadStart {
  buildId: number;
  sizes: readonly number[];
  /** Chunks already verified and written (resumed), shared: `done` keeps it current. */
  done: Uint8Array;
  partialPath: string;
  /** Where the file is once installed (served from there after the rename). */
  releasePath: string;
}

export interface PieceSource {
  /** For logs: "relay", or a peer's id. */
  readonly name: string;
  /**
   * The bytes of `piece`, unverified: the caller checks their digest. Throws
   * PieceUnavailable when no one can serve it now (the caller retries later). With
   * `fallback`, the asker could wait for a peer instead: a busy relay refuses it (RelayBusy).
   */
  fetchPiece(
    piece: PieceRequest,
    signal: AbortSignal,
    o?: { fallback?: boolean },
  ): Promise<{ bytes: Uint8Array; from: string }>;
  /** Bytes that `from` served for `piece` were wrong: stop trusting it (a peer is banned). */
  reportBad?(piece: PieceRequest, from: string, reason: string): void;
  /** A download starts: a source that chooses the order returns how to follow it. */
  begin?(download: DownloadStart): DownloadTracking;
}

/** No source could serve the piece now. */
export class PieceUnavailable extends Error {
  override readonly name: string = "PieceUnavailable";
}

/** Every relay refused a fallback ask as busy (503 relay_busy): ask peers, then retry. */
export class RelayBusy extends PieceUnavailable {
  override readonly name = "RelayBusy";
}

/**
 * Reads a response body into one buffer of exactly `size` bytes; refuses a longer or shorter
 * body without buffering more than `size`.
 */
export async function readExactly(response: Response, size: number): Promise<Uint8Array> {
  const declared = response.headers.get("Content-Length");
  if (declared !== null && Number(declared) !== size) {
    await response.body?.cancel();
    throw new PieceUnavailable(`expected ${size} bytes, the response declares ${declared}`);
  }
  const out = new Uint8Array(size);
  let at = 0;
  if (response.body) {
    for await (const piece of response.body) {
      if (at + piece.length > size) {
        throw new PieceUnavailable(`expected ${size} bytes, got more`);
      }
      out.set(piece, at);
      at += piece.length;
    }
  }
  if (at !== size) throw new PieceUnavailable(`expected ${size} bytes, got ${at}`);
  return out;
}
