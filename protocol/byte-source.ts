/** Input of the chunker and hashers: a web stream or any async iterable of byte pieces. */
export type ByteSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * The pieces of `source` in order, each checked to be a Uint8Array. Leaving the loop early
 * (break, or an exception in the loop body) cancels a `ReadableStream` source.
 */
export async function* readPieces(source: ByteSource): AsyncGenerator<Uint8Array, void, undefined> {
  if (!isReadableStream(source)) {
    for await (const piece of source) yield checkPiece(piece);
    return;
  }
  const reader = source.getReader();
  let done = false;
  try {
    for (;;) {
      const result = await reader.read();
      if (result.done) {
        done = true;
        return;
      }
      yield checkPiece(result.value);
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

function isReadableStream(source: ByteSource): source is ReadableStream<Uint8Array> {
  return typeof (source as ReadableStream<Uint8Array>).getReader === "function";
}

function checkPiece(piece: unknown): Uint8Array {
  if (!(piece instanceof Uint8Array)) {
    const got = Object.prototype.toString.call(piece);
    throw new TypeError(`expected a stream of Uint8Array pieces, got ${got}`);
  }
  return piece;
}
