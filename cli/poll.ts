import type { Context } from "./context.ts";
import { CliError } from "./errors.ts";

/**
 * Runs one read of a watch loop, riding out a control plane that is briefly unreachable (a
 * restart, a dropped connection) for `ctx.unreachableGraceMs` before giving up with exit 4.
 * Refusals are not retried: they will not change by asking again.
 */
export async function pollOnce<T>(ctx: Context, read: () => Promise<T>): Promise<T> {
  const deadline = ctx.now() + ctx.unreachableGraceMs;
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (!(err instanceof CliError) || err.kind !== "unreachable" || ctx.now() >= deadline) {
        throw err;
      }
      await ctx.sleep(ctx.pollMs);
    }
  }
}
