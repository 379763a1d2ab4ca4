/** A build's output as lines: decoded as UTF-8 (invalid bytes replaced), split on \n. */

/**
 * The lines of `stream` in order; a final line without a newline is kept; `\r` before `\n` is
 * dropped. Ending the iteration early, or aborting `signal`, cancels the stream.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string, void, undefined> {
  const splitter = new LineSplitter();
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let done = false;
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const result = await reader.read();
      if (result.done) {
        done = true;
        break;
      }
      yield* splitter.push(decoder.decode(result.value, { stream: true }));
    }
    yield* splitter.push(decoder.decode());
    yield* splitter.end();
  } finally {
    signal?.removeEventListener("abort", cancel);
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Splits text pieces into lines; holds only the unfinished last line between pushes. */
export class LineSplitter {
  #partial = "";

  /** The lines completed by `text`. */
  push(text: string): string[] {
    const parts = (this.#partial + text).split("\n");
    this.#partial = parts.pop() ?? "";
    return parts.map(stripCr);
  }

  /** The unfinished last line, if any. */
  end(): string[] {
    const rest = this.#partial;
    this.#partial = "";
    return rest === "" ? [] : [stripCr(rest)];
  }
}

const stripCr = (line: string) => (line.endsWith("\r") ? line.slice(0, -1) : line);
