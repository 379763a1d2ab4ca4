/**
 * Groups log lines into the batches one `POST /v1/worker/builds/:id/logs` may carry: at most
 * 1000 lines and 200 KB of JSON per batch (the API refuses bodies over 256 KiB), each line at
 * most 16,384 characters (a longer line is cut into several).
 */

export interface LogLimits {
  maxLines: number;
  /** UTF-8 bytes of the lines as JSON strings, separators included. */
  maxBytes: number;
  maxLineChars: number;
}

export const LOG_LIMITS: LogLimits = Object.freeze({
  maxLines: 1000,
  maxBytes: 200_000,
  maxLineChars: 16_384,
});

const encoder = new TextEncoder();

/** Bytes `line` adds to a JSON array of strings: its quoted, escaped form and a comma. */
export function jsonLineBytes(line: string): number {
  return encoder.encode(JSON.stringify(line)).byteLength + 1;
}

/** `line` cut into pieces of at most `max` characters, never splitting a surrogate pair. */
export function capLine(line: string, max: number): string[] {
  if (line.length <= max) return [line];
  const pieces: string[] = [];
  let start = 0;
  while (start < line.length) {
    let end = Math.min(start + max, line.length);
    const last = line.charCodeAt(end - 1);
    if (end < line.length && end - start > 1 && last >= 0xd800 && last <= 0xdbff) end--;
    pieces.push(line.slice(start, end));
    start = end;
  }
  return pieces;
}

/** Lines in, full batches out; the unfinished batch stays until asked for. */
export class LogBatcher {
  readonly #limits: LogLimits;
  readonly #full: { lines: string[]; bytes: number }[] = [];
  #current: string[] = [];
  #currentBytes = 0;
  #pendingBytes = 0;

  constructor(limits: LogLimits = LOG_LIMITS) {
    this.#limits = limits;
  }

  /** Bytes held, full batches and the unfinished one together. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  get isEmpty(): boolean {
    return this.#full.length === 0 && this.#current.length === 0;
  }

  get hasFullBatch(): boolean {
    return this.#full.length > 0;
  }

  add(line: string): void {
    for (const piece of capLine(line, this.#limits.maxLineChars)) {
      const bytes = jsonLineBytes(piece);
      const fits =
        this.#current.length < this.#limits.maxLines &&
        this.#currentBytes + bytes <= this.#limits.maxBytes;
      if (!fits && this.#current.length > 0) this.#seal();
      this.#current.push(piece);
      this.#currentBytes += bytes;
      this.#pendingBytes += bytes;
    }
  }

  /** The oldest full batch; with `partial`, the unfinished one when no full batch is left. */
  take(partial: boolean): string[] | undefined {
    if (this.#full.length === 0 && partial && this.#current.length > 0) this.#seal();
    const batch = this.#full.shift();
    if (!batch) return undefined;
    this.#pendingBytes -= batch.bytes;
    return batch.lines;
  }

  #seal(): void {
    this.#full.push({ lines: this.#current, bytes: this.#currentBytes });
    this.#current = [];
    this.#currentBytes = 0;
  }
}
