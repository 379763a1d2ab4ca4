// Agent ↔ agent messages (DESIGN section 8): binary WebSocket frames, transport-free.
// `encodePeerMessage` writes one frame; `decodePeerFrame` reads one and throws only
// PeerWireError (a malformed frame), so a session can drop the peer that sent it. A frame of a
// kind this version does not know comes back as `unknown`: newer peers add kinds, older ones
// ignore them.
//
// Layout (big-endian): byte 0 is the kind; then
//   have     build u64 · chunks u32 · bitfield ceil(chunks/8) bytes (bit i = byte i>>3, 1<<(i&7);
//            spare bits of the last byte are zero)
//   request  build u64 · index u32
//   piece    build u64 · index u32 · length u32 · bytes (length ≤ MAX_PIECE_BYTES)
//   cancel   build u64 · index u32
//   choke, unchoke: nothing
// Builds are the control plane's build ids (1 … 2^53-1), chunks are indices in its manifest.

/** Largest piece carried (the chunker's largest chunk is well below it). */
export const MAX_PIECE_BYTES = 16 * 1024 * 1024;
/** kind + build + index + length. */
export const PIECE_HEADER_BYTES = 17;
/** Most chunks one build's `have` describes (a 128 KiB bitfield). */
export const MAX_CHUNKS_PER_BUILD = 1 << 20;
/** Largest frame either side accepts. */
export const MAX_PEER_FRAME_BYTES = PIECE_HEADER_BYTES + MAX_PIECE_BYTES;

export const PEER_KINDS = {
  have: 1,
  request: 2,
  piece: 3,
  cancel: 4,
  choke: 5,
  unchoke: 6,
} as const;

export type PeerMessage =
  | { type: "have"; build_id: number; chunks: number; bitfield: Uint8Array }
  | { type: "request"; build_id: number; index: number }
  | { type: "piece"; build_id: number; index: number; bytes: Uint8Array }
  | { type: "cancel"; build_id: number; index: number }
  | { type: "choke" }
  | { type: "unchoke" };

export type DecodedPeerFrame =
  | { readonly kind: "message"; readonly message: PeerMessage }
  /** A kind this version does not know: pass it up, do not fail. */
  | { readonly kind: "unknown"; readonly code: number; readonly payload: Uint8Array };

export type PeerWireErrorCode =
  | "empty"
  | "too_large"
  | "truncated"
  | "trailing_bytes"
  | "bad_build"
  | "bad_count"
  | "bad_bitfield";

/** A malformed frame: the peer that sent it is not speaking this protocol; drop it. */
export class PeerWireError extends Error {
  override readonly name = "PeerWireError";
  constructor(
    readonly code: PeerWireErrorCode,
    message: string,
  ) {
    super(`peer frame: ${message}`);
  }
}

/**
 * Room for a piece of `size` bytes with its frame header in front (a view past the header).
 * Bytes read into it are framed by encodePeerMessage without a copy: an agent serving 1 GiB
 * to peers then copies 1 GiB less, and allocates and zero-fills one buffer per piece, not two.
 */
export function pieceRoom(size: number): Uint8Array {
  return new Uint8Array(PIECE_HEADER_BYTES + size).subarray(PIECE_HEADER_BYTES);
}

/**
 * Decodes one frame. Throws PeerWireError for anything malformed, never anything else. A
 * piece's bytes are a view into `data`, not a copy.
 */
export function decodePeerFrame(data: Uint8Array | ArrayBuffer): DecodedPeerFrame {
  const frame = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (frame.length === 0) throw new PeerWireError("empty", "empty frame");
  if (frame.length > MAX_PEER_FRAME_BYTES) {
    throw new PeerWireError("too_large", `${frame.length} bytes exceed ${MAX_PEER_FRAME_BYTES}`);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const code = frame[0]!;
  switch (code) {
    case PEER_KINDS.have: {
      need(frame, 13);
      const chunks = view.getUint32(9);
      if (chunks > MAX_CHUNKS_PER_BUILD) {
        throw new PeerWireError("bad_count", `${chunks} chunks exceed ${MAX_CHUNKS_PER_BUILD}`);
      }
      const size = Math.ceil(chunks / 8);
      exactly(frame, 13 + size);
      const bitfield = frame.slice(13);
      const spare = chunks % 8;
      if (spare !== 0 && (bitfield[size - 1]! & ~((1 << spare) - 1)) !== 0) {
        throw new PeerWireError("bad_bitfield", "bits set past the last chunk");
      }
      return message({ type: "have", build_id: buildAt(view), chunks, bitfield });
    }
    case PEER_KINDS.request:
    case PEER_KINDS.cancel: {
      exactly(frame, 13);
      const type = code === PEER_KINDS.request ? "request" : "cancel";
      return message({ type, build_id: buildAt(view), index: indexAt(view) });
    }
    case PEER_KINDS.piece: {
      need(frame, PIECE_HEADER_BYTES);
      const length = view.getUint32(13);
      if (length > MAX_PIECE_BYTES) {
        throw new PeerWireError("too_large", `a piece of ${length} bytes exceeds the cap`);
      }
      exactly(frame, PIECE_HEADER_BYTES + length);
      return message({
        type: "piece",
        build_id: buildAt(view),
        index: indexAt(view),
        // A view, not a copy: the frame is the transport's own message, and this is its bulk.
        bytes: frame.subarray(PIECE_HEADER_BYTES),
      });
    }
    case PEER_KINDS.choke:
    case PEER_KINDS.unchoke:
      exactly(frame, 1);
      return message({ type: code === PEER_KINDS.choke ? "choke" : "unchoke" });
    default:
      return { kind: "unknown", code, payload: frame.slice(1) };
  }
}

/** Encodes one message; a TypeError or RangeError says what is wrong with it. */
export function encodePeerMessage(m: PeerMessage): Uint8Array {
  switch (m.type) {
    case "have": {
      checkCount(m.chunks);
      const size = Math.ceil(m.chunks / 8);
      if (m.bitfield.length !== size) {
        throw new RangeError(`have: a bitfield of ${m.chunks} chunks is ${size} bytes`);
      }
      const out = header(13 + size, PEER_KINDS.have, m.build_id);
      new DataView(out.buffer).setUint32(9, m.chunks);
      out.set(m.bitfield, 13);
      const spare = m.chunks % 8;
      if (spare !== 0) out[out.length - 1]! &= (1 << spare) - 1;
      return out;
    }
    case "request":
    case "cancel": {
      const out = header(13, PEER_KINDS[m.type], m.build_id);
      new DataView(out.buffer).setUint32(9, checkIndex(m.index));
      return out;
    }
    case "piece": {
      const bytes = m.bytes;
      if (bytes.length > MAX_PIECE_BYTES) {
        throw new RangeError(`piece: ${bytes.length} bytes exceed ${MAX_PIECE_BYTES}`);
      }
      const index = checkIndex(m.index);
      // Bytes read into pieceRoom() are framed where they lie; any others are copied.
      const inRoom =
        bytes.byteOffset === PIECE_HEADER_BYTES &&
        bytes.buffer instanceof ArrayBuffer &&
        bytes.buffer.byteLength === PIECE_HEADER_BYTES + bytes.length;
      const out = header(
        PIECE_HEADER_BYTES + bytes.length,
        PEER_KINDS.piece,
        m.build_id,
        inRoom ? new Uint8Array(bytes.buffer) : undefined,
      );
      const view = new DataView(out.buffer);
      view.setUint32(9, index);
      view.setUint32(13, bytes.length);
      if (!inRoom) out.set(bytes, PIECE_HEADER_BYTES);
      return out;
    }
    case "choke":
    case "unchoke":
      return Uint8Array.of(PEER_KINDS[m.type]);
    default:
      throw new TypeError(`unknown peer message type ${JSON.stringify((m as PeerMessage).type)}`);
  }
}

function message(m: PeerMessage): DecodedPeerFrame {
  return { kind: "message", message: m };
}

function need(frame: Uint8Array, bytes: number): void {
  if (frame.length < bytes) {
    throw new PeerWireError("truncated", `${frame.length} bytes, the header needs ${bytes}`);
  }
}

function exactly(frame: Uint8Array, bytes: number): void {
  need(frame, bytes);
  if (frame.length !== bytes) {
    throw new PeerWireError("trailing_bytes", `${frame.length} bytes, expected ${bytes}`);
  }
}

function buildAt(view: DataView): number {
  const build = view.getBigUint64(1);
  if (build < 1n || build > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new PeerWireError("bad_build", `build ${build} is not a build id`);
  }
  return Number(build);
}

function indexAt(view: DataView): number {
  const index = view.getUint32(9);
  if (index >= MAX_CHUNKS_PER_BUILD) {
    throw new PeerWireError("bad_count", `chunk index ${index} exceeds ${MAX_CHUNKS_PER_BUILD}`);
  }
  return index;
}

function header(size: number, kind: number, build: number, into?: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(build) || build < 1) {
    throw new RangeError(`build ${build} is not a build id`);
  }
  const out = into ?? new Uint8Array(size);
  out[0] = kind;
  new DataView(out.buffer).setBigUint64(1, BigInt(build));
  return out;
}

function checkCount(chunks: number): void {
  if (!Number.isInteger(chunks) || chunks < 0 || chunks > MAX_CHUNKS_PER_BUILD) {
    throw new RangeError(`chunk count ${chunks} is not in 0…${MAX_CHUNKS_PER_BUILD}`);
  }
}

function checkIndex(index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CHUNKS_PER_BUILD) {
    throw new RangeError(`chunk index ${index} is not in 0…${MAX_CHUNKS_PER_BUILD - 1}`);
  }
  return index;
}
