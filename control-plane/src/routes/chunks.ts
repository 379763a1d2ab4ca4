import { createRoute, z } from "@hono/zod-openapi";
import { CHUNKER_LIMITS } from "../../../protocol/chunker-params.ts";
import { DIGEST_PATTERN } from "../../../protocol/hash.ts";
import type { App } from "../app-env.ts";
import { missingIn } from "../artifacts/accept.ts";
import { bucketFor, chunkKey, primaryRegion } from "../artifacts/buckets.ts";
import { requireRole } from "../auth/tokens.ts";
import { chunkReplicas, chunks } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { errors, json, jsonBody, security } from "./schemas.ts";

const Digest = z.string().regex(DIGEST_PATTERN, "must be a sha256 hex digest (64 lowercase hex)");

/** A chunk body may be at most the chunker's largest allowed chunk (16 MiB). */
export const MAX_CHUNK_BYTES = CHUNKER_LIMITS.max_size[1];

const missing = createRoute({
  method: "post",
  path: "/v1/chunks/missing",
  summary: "Which of these chunks the primary bucket lacks (upload only those)",
  tags: ["artifacts"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { body: jsonBody(z.strictObject({ digests: z.array(Digest).min(1).max(4096) })) },
  responses: {
    200: json(z.object({ missing: z.array(z.string()) }), "the missing digests"),
    ...errors(400, 401, 403),
  },
});

const put = createRoute({
  method: "put",
  path: "/v1/chunks/{digest}",
  summary: "Upload one chunk; its bytes must hash to the digest (idempotent)",
  tags: ["artifacts"],
  security,
  middleware: [requireRole("builder")] as const,
  request: {
    params: z.object({ digest: Digest.openapi({ param: { name: "digest", in: "path" } }) }),
    body: {
      required: true,
      content: {
        "application/octet-stream": {
          schema: z.any().openapi({ type: "string", format: "binary" }),
        },
      },
    },
  },
  responses: {
    201: json(
      z.object({ digest: z.string(), size: z.number(), stored: z.literal(true) }),
      "stored",
    ),
    200: json(
      z.object({ digest: z.string(), size: z.number(), stored: z.literal(false) }),
      "already stored",
    ),
    ...errors(400, 401, 403, 413),
  },
});

export function registerChunks(app: App): void {
  app.openapi(missing, async (c) => {
    const { digests } = c.req.valid("json");
    const region = primaryRegion(c.get("config"));
    return c.json({ missing: await missingIn(c.get("db"), region, digests) }, 200);
  });

  app.openapi(put, async (c) => {
    const { digest } = c.req.valid("param");
    const length = Number(c.req.header("Content-Length") ?? Number.NaN);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new ApiError(400, "length_required", "send Content-Length with the chunk's size");
    }
    if (length > MAX_CHUNK_BYTES) {
      throw new ApiError(
        413,
        "too_large",
        `a chunk is at most ${MAX_CHUNK_BYTES} bytes; got ${length}`,
      );
    }
    const db = c.get("db");
    const region = primaryRegion(c.get("config"));
    if ((await missingIn(db, region, [digest])).length === 0) {
      return c.json({ digest, size: length, stored: false as const }, 200);
    }
    const body = c.req.raw.body;
    if (!body) throw new ApiError(400, "invalid_input", "the chunk's bytes are missing");
    // R2 checks the sha256 while the body streams in and refuses the whole put on a mismatch,
    // so a wrong chunk is never stored, and the body is never buffered here.
    const stream = body.pipeThrough(new FixedLengthStream(length));
    let object: R2Object | null;
    try {
      object = await bucketFor(c.env, region).put(chunkKey(digest), stream, { sha256: digest });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/checksum|sha-?256|digest|hash/i.test(message)) {
        throw new ApiError(
          400,
          "digest_mismatch",
          `the body does not hash to ${digest}; nothing was stored`,
        );
      }
      if (/length|size/i.test(message)) {
        throw new ApiError(
          400,
          "length_mismatch",
          `the body is not Content-Length (${length}) bytes long`,
        );
      }
      throw err;
    }
    if (!object) throw new Error(`R2 put of ${digest} returned no object`);
    await db.batch([
      db.insert(chunks).values({ digest, size: object.size }).onConflictDoNothing(),
      db.insert(chunkReplicas).values({ digest, region }).onConflictDoNothing(),
    ]);
    return c.json({ digest, size: object.size, stored: true as const }, 201);
  });
}
