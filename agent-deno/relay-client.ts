/**
 * The relays' HTTP side, as the agent uses it: manifests and chunks, with the agent token. A
 * request goes to the relay the agent is connected to first, then to the others in order, so a
 * dead relay costs one failed request, not a stalled download.
 */
import {
  type PieceRequest,
  type PieceSource,
  PieceUnavailable,
  RelayBusy,
  readExactly,
} from "./piece-source.ts";

export interface RelayClientOptions {
  relays: readonly string[];
  token: string;
  /** The relay connected now (tried first), if any. */
  preferred: () => string | null;
  /** Per request. Default 60 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** A relay answered with a refusal that another relay would give too (401, 400). */
export class RelayRefusal extends Error {
  override readonly name = "RelayRefusal";
  constructor(
    readonly status: number,
    message: string,
    /** The error body's code, when it has one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export class RelayClient implements PieceSource {
  readonly name = "relay";
  readonly #o: RelayClientOptions;

  constructor(options: RelayClientOptions) {
    this.#o = options;
  }

  /** Relays that served wrong bytes for a digest: tried last for it. */
  readonly #bad = new Map<string, Set<string>>();

  /** The relays in the order to try them (for `digest`: those that served it wrong, last). */
  order(digest?: string): string[] {
    const first = this.#o.preferred();
    const rest = this.#o.relays.filter((r) => r !== first);
    const all = first === null ? rest : [first, ...rest];
    const bad = digest === undefined ? undefined : this.#bad.get(digest);
    if (!bad) return all;
    return [...all.filter((r) => !bad.has(r)), ...all.filter((r) => bad.has(r))];
  }

  reportBad(piece: PieceRequest, from: string): void {
    const bad = this.#bad.get(piece.digest) ?? new Set<string>();
    bad.add(from);
    if (this.#bad.size > 10_000) this.#bad.clear();
    this.#bad.set(piece.digest, bad);
  }

  /** With `fallback`, a relay may refuse as busy; when every relay does, RelayBusy. */
  async fetchPiece(
    piece: PieceRequest,
    signal: AbortSignal,
    o: { fallback?: boolean } = {},
  ): Promise<{ bytes: Uint8Array; from: string }> {
    const failures: string[] = [];
    let busy = 0;
    const path = `/v1/chunks/${piece.digest}${o.fallback ? "?fallback=1" : ""}`;
    for (const relay of this.order(piece.digest)) {
      signal.throwIfAborted();
      try {
        const response = await this.#get(relay, path, signal);
        return { bytes: await readExactly(response, piece.size), from: relay };
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof RelayRefusal && err.code === "relay_busy") busy++;
        failures.push(`${relay}: ${err instanceof Error ? err.message : err}`);
      }
    }
    const text = `chunk ${piece.digest}: no relay served it (${failures.join("; ")})`;
    throw busy > 0 && busy === failures.length ? new RelayBusy(text) : new PieceUnavailable(text);
  }

  /** `GET /v1/builds/:id/manifest`'s JSON body (`{manifest, signature, public_key}`), unverified. */
  async manifest(buildId: number, signal: AbortSignal): Promise<unknown> {
    const failures: string[] = [];
    for (const relay of this.order()) {
      try {
        const response = await this.#get(relay, `/v1/builds/${buildId}/manifest`, signal);
        return await response.json();
      } catch (err) {
        if (signal.aborted) throw err;
        failures.push(`${relay}: ${err instanceof Error ? err.message : err}`);
      }
    }
    throw new PieceUnavailable(
      `manifest of build ${buildId}: no relay served it (${failures.join("; ")})`,
    );
  }

  async #get(relay: string, path: string, signal: AbortSignal): Promise<Response> {
    const response = await (this.#o.fetch ?? fetch)(`${relay}${path}`, {
      headers: { Authorization: `Bearer ${this.#o.token}` },
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.#o.timeoutMs ?? 60_000)]),
    });
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    let code: string | undefined;
    try {
      code = JSON.parse(text)?.error?.code;
    } catch {
      // not the error format
    }
    throw new RelayRefusal(response.status, `${response.status} ${text.slice(0, 200)}`, code);
  }
}
