/**
 * Signed manifests, fetched from the control plane once per build and kept on disk (a build's
 * manifest never changes). Served to agents verbatim: `GET /v1/builds/:id/manifest`'s body.
 * The relay checks the signature before keeping one, so it never spreads a forged or damaged
 * manifest; agents check it again themselves.
 */
import { verifyManifest } from "../protocol/manifest-signing.ts";
import type { Verifier } from "../protocol/signing.ts";
import { errorText, type Logger } from "./log.ts";

export class ManifestUnavailable extends Error {
  override readonly name = "ManifestUnavailable";
  constructor(
    readonly status: 404 | 409 | 502,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ManifestCacheOptions {
  dir: string;
  verifier: Verifier;
  fetchManifest: (buildId: number) => Promise<string>;
  /** The HTTP status of an upstream refusal, if `err` is one. */
  statusOf: (err: unknown) => number | null;
  logger: Logger;
}

export class ManifestCache {
  readonly #o: ManifestCacheOptions;
  readonly #inflight = new Map<number, Promise<string>>();

  constructor(options: ManifestCacheOptions) {
    this.#o = options;
  }

  async init(): Promise<void> {
    await Deno.mkdir(this.#o.dir, { recursive: true });
  }

  /** The manifest response body of `buildId`; throws ManifestUnavailable. */
  get(buildId: number): Promise<string> {
    let pending = this.#inflight.get(buildId);
    if (!pending) {
      pending = this.#get(buildId).finally(() => this.#inflight.delete(buildId));
      this.#inflight.set(buildId, pending);
    }
    return pending;
  }

  async #get(buildId: number): Promise<string> {
    const path = `${this.#o.dir}/${buildId}.json`;
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const started = Date.now();
    let text: string;
    try {
      text = await this.#o.fetchManifest(buildId);
    } catch (err) {
      const status = this.#o.statusOf(err);
      if (status === 404 || status === 409) {
        throw new ManifestUnavailable(status, `build ${buildId} has no manifest`, { cause: err });
      }
      throw new ManifestUnavailable(502, `manifest of build ${buildId}: ${errorText(err)}`, {
        cause: err,
      });
    }
    const verdict = await this.#verify(text, buildId);
    if (!verdict.ok) {
      this.#o.logger.log("error", "manifest:refused", {
        build_id: buildId,
        reason: verdict.message,
      });
      throw new ManifestUnavailable(
        502,
        `manifest of build ${buildId} refused: ${verdict.message}`,
      );
    }
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
    this.#o.logger.log("info", "manifest:fetched", { build_id: buildId, ms: Date.now() - started });
    return text;
  }

  async #verify(
    text: string,
    buildId: number,
  ): Promise<{ ok: true } | { ok: false; message: string }> {
    let body: { manifest?: unknown; signature?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      return { ok: false, message: "not JSON" };
    }
    const signature = typeof body.signature === "string" ? body.signature : null;
    const verdict = await verifyManifest(this.#o.verifier, { manifest: body.manifest, signature });
    if (!verdict.ok) return verdict;
    if (verdict.manifest.build_id !== buildId) {
      return { ok: false, message: `it names build ${verdict.manifest.build_id}` };
    }
    return { ok: true };
  }
}
