import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { App } from "../app-env.ts";
import { bucketFor, manifestKey, primaryRegion, signatureKey } from "../artifacts/buckets.ts";
import { signingKeys } from "../artifacts/signing-key.ts";
import { requireRole } from "../auth/tokens.ts";
import { builds } from "../db/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import { errors, IdParam, json, security } from "./schemas.ts";

const SignedManifest = z
  .object({
    manifest: z.record(z.string(), z.unknown()),
    signature: z
      .string()
      .openapi({ description: "base64 Ed25519 signature of the canonical manifest bytes" }),
    public_key: z.string(),
  })
  .openapi("SignedManifest");

const get = createRoute({
  method: "get",
  path: "/v1/builds/{id}/manifest",
  summary: "The build's signed manifest (SUCCEEDED builds only)",
  tags: ["artifacts"],
  security,
  middleware: [requireRole("any")] as const,
  request: { params: IdParam },
  responses: { 200: json(SignedManifest, "manifest and signature"), ...errors(400, 401, 404, 409) },
});

const key = createRoute({
  method: "get",
  path: "/v1/signing-key",
  summary: "The public key that verifies manifests and goal states",
  tags: ["artifacts"],
  responses: {
    200: json(
      z.object({ algorithm: z.literal("Ed25519"), public_key: z.string() }),
      "the public key",
    ),
  },
});

export function registerManifests(app: App): void {
  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    const build = await c.get("db").query.builds.findFirst({ where: eq(builds.id, id) });
    if (!build) throw notFound("build", id);
    if (build.status !== "SUCCEEDED") {
      throw new ApiError(
        409,
        "no_manifest",
        `build ${id} is ${build.status}; only SUCCEEDED builds have a manifest`,
      );
    }
    const bucket = bucketFor(c.env, primaryRegion(c.get("config")));
    const [body, sig] = await Promise.all([
      bucket.get(manifestKey(id)),
      bucket.get(signatureKey(id)),
    ]);
    if (!body || !sig)
      throw new Error(`manifest of SUCCEEDED build ${id} is missing from the primary bucket`);
    const { publicKey } = await signingKeys(c.env.SIGNING_KEY);
    return c.json(
      {
        manifest: JSON.parse(await body.text()) as Record<string, unknown>,
        signature: await sig.text(),
        public_key: publicKey,
      },
      200,
    );
  });

  app.openapi(key, async (c) => {
    const { publicKey } = await signingKeys(c.env.SIGNING_KEY);
    return c.json({ algorithm: "Ed25519" as const, public_key: publicKey }, 200);
  });
}
