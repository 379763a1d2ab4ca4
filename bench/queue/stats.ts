// What every run records, and how the tables print. The counters are the correctness checks:
// a run that hands one build to two workers, or loses one, says so in its own row.

/** Latencies of one run's claims and the correctness counters of its hand-outs. */
export class RunRecord {
  readonly claimMs: number[] = [];
  readonly completeMs: number[] = [];
  /** (build id, attempt) of every successful claim; a second one for a key is a duplicate. */
  readonly #handedOut = new Set<string>();
  readonly #builds = new Set<number>();
  claims = 0;
  /** Claims of a (build, attempt) already handed out in this run. */
  duplicateAttempts = 0;
  /** Claims of a build already handed out in this run (no run requeues, so each is a double hand-out). */
  duplicateBuilds = 0;
  completes = 0;
  /** Completions the store refused (the lease moved on: only after a double hand-out). */
  refusedCompletes = 0;
  /** Failed requests or statements (e.g. SQLITE_BUSY_SNAPSHOT); the worker retries. */
  errors = 0;
  readonly errorKinds = new Map<string, number>();
  startedAt = performance.now();
  endedAt = 0;

  claimed(id: number, attempt: number, ms: number): void {
    this.claims++;
    this.claimMs.push(ms);
    const key = `${id}/${attempt}`;
    if (this.#handedOut.has(key)) this.duplicateAttempts++;
    this.#handedOut.add(key);
    if (this.#builds.has(id)) this.duplicateBuilds++;
    this.#builds.add(id);
  }

  failed(error: unknown): void {
    this.errors++;
    const kind = errorKind(error);
    this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
  }

  get distinctBuilds(): number {
    return this.#builds.size;
  }

  get seconds(): number {
    return ((this.endedAt || performance.now()) - this.startedAt) / 1000;
  }

  /** Completed claim→complete cycles per second. */
  get cyclesPerSecond(): number {
    return this.completes / this.seconds;
  }

  get claimsPerSecond(): number {
    return this.claims / this.seconds;
  }

  errorSummary(): string {
    if (this.errors === 0) return "0";
    const kinds = [...this.errorKinds].map(([k, n]) => `${k}×${n}`).join(", ");
    return `${this.errors} (${kinds})`;
  }
}

function errorKind(error: unknown): string {
  const text = error instanceof Error ? `${error.message}` : String(error);
  const code = /SQLITE_[A-Z_]+/.exec(text)?.[0] ?? /HTTP \d{3}/.exec(text)?.[0];
  // dev/libsql reports a stale snapshot (SQLITE_BUSY_SNAPSHOT) in a transaction as
  // SQLITE_BUSY and rolls the transaction back; say so, it is the interesting case.
  if (code === "SQLITE_BUSY" && text.includes("rolled back")) return "BUSY, txn rolled back";
  return code ?? text.slice(0, 40);
}

/** A share of one core as a percentage. */
export function pct(share: number | undefined): string {
  return share === undefined || !Number.isFinite(share) ? "—" : `${Math.round(share * 100)}%`;
}

/** A figure of ours from table 2, shown beside the peer in table 3. */
export interface OursFigure {
  readonly via: string;
  readonly workers: number;
  readonly cyclesPerSecond: number;
  readonly p50: number;
  readonly p99: number;
}

/** The q-quantile (0..1) by nearest rank; NaN for no samples. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

export function ms(n: number): string {
  if (!Number.isFinite(n)) return "—";
  return n < 10 ? fmt(n, 2) : n < 100 ? fmt(n, 1) : fmt(n, 0);
}

/** A Markdown table (so a run's output can be pasted into docs/benchmarks.md as is). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [
    line(headers),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.map(line),
  ].join("\n");
}

export function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}
