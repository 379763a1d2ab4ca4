import type { Context } from "../context.ts";
import { bytes, clip, relativeTime, shortSha, status, table } from "../format.ts";
import type { Build } from "../types.ts";
import { watchBuild } from "../watch-build.ts";

export interface BuildOptions {
  force?: boolean | undefined;
  watch?: boolean | undefined;
}

/** `build <app> <sha>`: queues a build (or finds the one of that commit), then maybe watches it. */
export async function build(
  ctx: Context,
  app: string,
  sha: string,
  o: BuildOptions,
): Promise<void> {
  const api = await ctx.api();
  const req: Record<string, unknown> = { app, commit_sha: sha };
  if (o.force) req.force = true;
  const { status: code, body } = await api.post<Build>("/v1/builds", req);
  if (!o.watch) {
    if (ctx.json) return ctx.printJson(body);
    const what = code === 201 ? "queued" : "already exists";
    ctx.out(
      `Build ${ctx.paint("bold", String(body.id))} of ${app} at ${shortSha(sha)} ${what}: ${status(body.status, ctx.paint)}\n` +
        `Follow it with: build ${app} ${sha} --watch   (or: logs ${body.id} -f)\n`,
    );
    return;
  }
  if (!ctx.json) {
    const what = code === 201 ? "queued" : "exists";
    ctx.out(`Build ${body.id} of ${app} at ${shortSha(sha)} (${what}); logs: logs ${body.id} -f\n`);
  }
  await watchBuild(ctx, api, body.id);
}

/** `builds` as a table, newest first (used by `status`). */
export function buildsTable(ctx: Context, builds: Build[]): string {
  return table(
    ["ID", "APP", "COMMIT", "STATUS", "ATTEMPT", "SIZE", "CREATED", "REASON"],
    builds.map((b) => [
      String(b.id),
      b.app,
      shortSha(b.commit_sha),
      status(b.status, ctx.paint),
      `${b.attempt}/${b.max_attempts}`,
      bytes(b.size_bytes),
      relativeTime(b.created_at, ctx.now()),
      b.failure_reason ? clip(`${b.failure_reason}: ${b.failure_message ?? ""}`, 80) : "",
    ]),
    ctx.paint,
  );
}
