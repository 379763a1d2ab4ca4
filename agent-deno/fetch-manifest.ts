/**
 * A build's manifest, only if it is signed by the control plane and is the one the goal names:
 * its canonical bytes hash to the goal's `manifest_digest`, and it is for this app and build.
 */
import { type Manifest, manifestDigest } from "../protocol/manifest.ts";
import { verifyManifest } from "../protocol/manifest-signing.ts";
import type { Verifier } from "../protocol/signing.ts";
import type { Logger } from "./log.ts";

export interface ManifestDeps {
  manifests: { manifest(buildId: number, signal: AbortSignal): Promise<unknown> };
  verifier: Verifier;
  logger: Logger;
}

export class ManifestRefused extends Error {
  override readonly name = "ManifestRefused";
}

export async function fetchVerifiedManifest(
  d: ManifestDeps,
  want: { app: string; build_id: number; manifest_digest: string },
  signal: AbortSignal,
): Promise<{ manifest: Manifest; text: string }> {
  const body = (await d.manifests.manifest(want.build_id, signal)) as {
    manifest?: unknown;
    signature?: unknown;
  };
  const refuse = (reason: string): never => {
    d.logger.log("error", "manifest:refused", { app: want.app, build_id: want.build_id, reason });
    throw new ManifestRefused(`manifest of build ${want.build_id} refused: ${reason}`);
  };
  if (typeof body !== "object" || body === null) refuse("not a JSON object");
  const signature = typeof body.signature === "string" ? body.signature : null;
  const verdict = await verifyManifest(d.verifier, { manifest: body.manifest, signature });
  if (!verdict.ok) return refuse(verdict.message);
  const m = verdict.manifest;
  const digest = await manifestDigest(m);
  if (digest !== want.manifest_digest)
    refuse(`its digest ${digest} is not the goal's ${want.manifest_digest}`);
  if (m.app !== want.app || m.build_id !== want.build_id)
    refuse(`it is for ${m.app} build ${m.build_id}`);
  return { manifest: m, text: JSON.stringify({ manifest: body.manifest, signature }) };
}
