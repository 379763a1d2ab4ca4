import type { Context } from "../context.ts";
import { usageError } from "../errors.ts";
import { relativeTime, table } from "../format.ts";
import type { Application, HealthCheck } from "../types.ts";

export async function listApps(ctx: Context): Promise<void> {
  const body = await (await ctx.api()).get<{ applications: Application[] }>("/v1/applications");
  if (ctx.json) return ctx.printJson(body);
  if (body.applications.length === 0) {
    ctx.out("No applications yet. Register one with `apps add <name> --repo URL ...`.\n");
    return;
  }
  ctx.out(
    table(
      ["NAME", "REGIONS", "HEALTH", "REPO", "CREATED"],
      body.applications.map((a) => [
        a.name,
        a.regions.join(","),
        healthText(a.health_check),
        a.repo_url,
        relativeTime(a.created_at, ctx.now()),
      ]),
      ctx.paint,
    ),
  );
}

export interface AddAppOptions {
  repo: string;
  build: string;
  artifact: string;
  run: string;
  healthHttp?: string | undefined;
  healthCmd?: string | undefined;
  regions?: string | undefined;
  buildTimeout?: number | undefined;
}

/** The `POST /v1/applications` body for `apps add`; bad flag values are usage errors. */
export function applicationBody(name: string, o: AddAppOptions): Record<string, unknown> {
  if (o.healthHttp !== undefined && o.healthCmd !== undefined) {
    throw usageError("give one health check: --health-http PORT:PATH or --health-cmd CMD");
  }
  const body: Record<string, unknown> = {
    name,
    repo_url: o.repo,
    build_command: o.build,
    artifact_path: o.artifact,
    run_command: o.run,
  };
  if (o.healthHttp !== undefined) body.health_check = parseHealthHttp(o.healthHttp);
  if (o.healthCmd !== undefined) body.health_check = { type: "command", command: o.healthCmd };
  if (o.regions !== undefined) {
    const regions = o.regions
      .split(",")
      .map((r) => r.trim())
      .filter((r) => r !== "");
    if (regions.length === 0) throw usageError("--regions needs at least one region: a,b");
    body.regions = regions;
  }
  if (o.buildTimeout !== undefined) body.build_timeout_s = o.buildTimeout;
  return body;
}

/** "8080:/healthz" → an HTTP health check. */
export function parseHealthHttp(value: string): HealthCheck {
  const m = /^(\d{1,5}):(\/.*)$/.exec(value);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) {
    throw usageError(`--health-http takes PORT:PATH, such as 8080:/healthz, not ${value}`);
  }
  return { type: "http", port, path: m[2]! };
}

export async function addApp(ctx: Context, name: string, o: AddAppOptions): Promise<void> {
  const body = applicationBody(name, o);
  const { body: app } = await (await ctx.api("admin")).post<Application>("/v1/applications", body);
  if (ctx.json) return ctx.printJson(app);
  ctx.out(
    `Registered ${ctx.paint("bold", app.name)} (regions ${app.regions.join(", ")}; health ${healthText(app.health_check)}).\n` +
      `Build a commit with: build ${app.name} <sha> --watch\n`,
  );
}

function healthText(h: HealthCheck | null): string {
  if (!h) return "none";
  return h.type === "http" ? `http :${h.port}${h.path}` : `cmd ${h.command}`;
}
