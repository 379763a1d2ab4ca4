import { and, eq, inArray } from "drizzle-orm";
import type { Context } from "hono";
import { sha256Hex } from "../../../protocol/hash.ts";
import { checkManifest, encodeManifest, type Manifest } from "../../../protocol/manifest.ts";
import type { AppEnv } from "../app-env.ts";
import type { Db } from "../db/client.ts";
import { chunkReplicas } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import type { BuildRow } from "../queue/build-view.ts";
import { bucketFor, manifestKey, primaryRegion, signatureKey } from "./buckets.ts";
import { signingKeys } from "./signing-key.ts";

/** IN-lists stay well under SQLite's variable limit. */
const IN_BATCH = 500;

/** Which of `digests` the region's bucket does not hold, per the chunk_replicas record. */
export async function missingIn(
  db: Db,
  region: string,
  digests: readonly string[],
): Promise<string[]> {
  const present = new Set<string>();
  for (let i = 0; i < digests.length; i += IN_BATCH) {
    const slice = digests.slice(i, i + IN_BATCH);
    const rows = await db
      .select({ digest: chunkReplicas.digest })
      .from(chunkReplicas)
      .where(and(eq(chunkReplicas.region, region), inArray(chunkReplicas.digest, slice)));
    for (const r of rows) present.add(r.digest);
  }
  return [...new Set(digests)].filter((d) => !present.has(d));
}

/** The digest a submitted manifest would be stored under, or null when it is not valid. */
export async function submittedManifestDigest(submitted: unknown): Promise<string | null> {
  const check = checkManifest(submitted);
  return check.ok ? await sha256Hex(encodeManifest(check.manifest)) : null;
}

/**
 * Checks a submitted manifest against its build and the primary bucket, signs it and stores
 * it (`manifests/<id>.json` + `.sig`): only then may the build be marked SUCCEEDED.
 */
export async function acceptArtifact(
  c: Context<AppEnv>,
  build: BuildRow,
  submitted: unknown,
): Promise<{ manifestDigest: string; sizeBytes: number; manifest: Manifest }> {
  const check = checkManifest(submitted);
  if (!check.ok) {
    throw new ApiError(
      400,
      "invalid_manifest",
      `manifest refused: ${check.issues[0] ?? "invalid"}`,
      {
        issues: check.issues,
      },
    );
  }
  const manifest: Manifest = check.manifest;
  const wrong: string[] = [];
  if (manifest.build_id !== build.id)
    wrong.push(`build_id ${manifest.build_id} (expected ${build.id})`);
  if (manifest.app !== build.app) wrong.push(`app ${manifest.app} (expected ${build.app})`);
  if (manifest.commit_sha !== build.commitSha)
    wrong.push(`commit_sha ${manifest.commit_sha} (expected ${build.commitSha})`);
  if (wrong.length > 0) {
    throw new ApiError(
      422,
      "manifest_mismatch",
      `manifest is for another build: ${wrong.join(", ")}`,
    );
  }
  const config = c.get("config");
  const primary = primaryRegion(config);
  const missing = await missingIn(
    c.get("db"),
    primary,
    manifest.chunks.map((ch) => ch.digest),
  );
  if (missing.length > 0) {
    throw new ApiError(
      422,
      "chunks_missing",
      `${missing.length} chunk(s) named by the manifest are not in the ${primary} bucket; upload them and complete again`,
      { missing: missing.slice(0, 100), count: missing.length },
    );
  }
  const { signer } = await signingKeys(c.env.SIGNING_KEY);
  const bytes = encodeManifest(manifest);
  const signature = await signer.signDocument("manifest", bytes);
  const bucket = bucketFor(c.env, primary);
  await bucket.put(manifestKey(build.id), bytes, {
    httpMetadata: { contentType: "application/json" },
  });
  await bucket.put(signatureKey(build.id), signature);
  return { manifestDigest: await sha256Hex(bytes), sizeBytes: manifest.size, manifest };
}
