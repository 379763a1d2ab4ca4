import { z } from "@hono/zod-openapi";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "invalid_input" }),
      message: z.string(),
      details: z.unknown().optional(),
      request_id: z.string().optional(),
    }),
  })
  .openapi("Error");

const errorContent = { "application/json": { schema: ErrorSchema } };

/** The refusals a route can give, for its OpenAPI entry. */
export function errors(...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 422 | 429)[]) {
  const text: Record<number, string> = {
    400: "invalid input",
    401: "missing or invalid token",
    403: "wrong role",
    404: "not found",
    409: "conflict with the current state",
    413: "body too large",
    422: "semantically invalid",
    429: "rate limited",
  };
  return Object.fromEntries(
    statuses.map((s) => [s, { description: text[s]!, content: errorContent }]),
  );
}

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const Slug = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{0,62}$/,
    "must be a slug: lowercase letters, digits and '-', starting with a letter, at most 63",
  )
  .openapi({ example: "checkout-api" });

export const CommitSha = z
  .string()
  .regex(/^[0-9a-f]{40}$/, "must be a full 40-character lowercase hex commit SHA")
  .openapi({ example: "3f786850e387550fdab836ed7e6dc881de23001b" });

export const Region = z.string().regex(/^[a-z][a-z0-9-]{1,30}$/, "must be a region name");

export const IdParam = z.object({
  id: z.coerce
    .number()
    .int()
    .positive()
    .max(Number.MAX_SAFE_INTEGER)
    .openapi({ param: { name: "id", in: "path" }, example: 42 }),
});

export const LeaseToken = z
  .string()
  .regex(/^[0-9a-f]{32}$/, "must be the lease_token the claim returned");

export const security = [{ bearer: [] }];

/** Control characters and bidirectional overrides (which can hide what a command runs). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what it refuses
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f\u202a-\u202e\u2066-\u2069]/;

/** A shell command or path as people write them: printable, one line, bounded. */
export const CommandText = (max = 4096) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !UNPRINTABLE.test(s), {
      message: "must not contain control characters or bidirectional overrides",
    });
