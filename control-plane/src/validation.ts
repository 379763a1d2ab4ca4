import type { Hook } from "@hono/zod-openapi";
import { ApiError } from "./errors.ts";

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
}

/** zod-openapi's validation failures become 400s in the common error format. */
// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every shape
export const validationHook: Hook<any, any, any, any> = (result) => {
  if (result.success) return;
  const issues = (result.error as { issues: Issue[] }).issues.map((i) => ({
    path: i.path.map(String).join("."),
    message: i.message,
  }));
  const first = issues[0];
  const where = result.target === "json" ? "body" : result.target;
  const message = first
    ? `invalid ${where}: ${first.path ? `${first.path}: ` : ""}${first.message}`
    : `invalid ${where}`;
  throw new ApiError(400, "invalid_input", message, { issues });
};
