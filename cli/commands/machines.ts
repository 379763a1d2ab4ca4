import type { Context } from "../context.ts";
import { relativeTime, status, table } from "../format.ts";
import type { Machine, Relay } from "../types.ts";

/** `machines [--region R] [--app A]`: what every machine runs, as its relay last reported. */
export async function machines(
  ctx: Context,
  o: { region?: string | undefined; app?: string | undefined },
): Promise<void> {
  const params = new URLSearchParams();
  if (o.region) params.set("region", o.region);
  if (o.app) params.set("app", o.app);
  const q = params.size > 0 ? `?${params}` : "";
  const body = await (await ctx.api()).get<{ machines: Machine[]; relays: Relay[] }>(
    `/v1/machines${q}`,
  );
  if (ctx.json) return ctx.printJson(body);
  const now = ctx.now();
  const scope = [o.region && `in ${o.region}`, o.app && `running ${o.app}`]
    .filter(Boolean)
    .join(" ");
  if (body.machines.length === 0) {
    ctx.out(`No machines reported${scope ? ` ${scope}` : ""} yet.\n`);
  } else {
    ctx.out(
      table(
        [
          "REGION",
          "MACHINE",
          "APP",
          "BUILD",
          "STATE",
          "REACHABLE",
          "RELAY",
          "REPORTED",
          "RESTARTS",
        ],
        body.machines.map((m) => [
          m.region,
          m.machine_id,
          m.app,
          m.build_id === null ? "-" : String(m.build_id),
          status(m.state, ctx.paint),
          m.reachable ? "yes" : ctx.paint("red", "no"),
          m.relay_id,
          relativeTime(m.reported_at, now),
          m.restarts ? ctx.paint("yellow", String(m.restarts)) : "0",
        ]),
        ctx.paint,
      ),
    );
    ctx.out(`${summary(body.machines)}\n`);
    // Why each failed machine failed: the agent's own words (exit code, restarts, log lines).
    for (const m of body.machines.filter((x) => x.state === "failed" && x.detail)) {
      ctx.out(`  ${ctx.paint("red", `${m.machine_id} ${m.app}`)} (${m.region}): ${m.detail}\n`);
    }
  }
  ctx.out("\n");
  if (body.relays.length === 0) {
    ctx.out(`No relays connected${o.region ? ` in ${o.region}` : ""}.\n`);
    return;
  }
  ctx.out(
    table(
      ["REGION", "RELAY", "MACHINES", "LAST REPORT", "URL"],
      body.relays.map((r) => [
        r.region,
        r.relay_id,
        String(r.machines),
        r.stale
          ? ctx.paint("red", `${relativeTime(r.last_report_at, now)} (stale)`)
          : relativeTime(r.last_report_at, now),
        r.url ?? "-",
      ]),
      ctx.paint,
    ),
  );
}

/** "12 machines: 10 healthy, 2 downloading; 1 unreachable". */
export function summary(ms: Machine[]): string {
  const states = new Map<string, number>();
  for (const m of ms) states.set(m.state, (states.get(m.state) ?? 0) + 1);
  const unreachable = ms.filter((m) => !m.reachable).length;
  const parts = [...states].map(([s, n]) => `${n} ${s}`).join(", ");
  return `${ms.length} ${ms.length === 1 ? "machine" : "machines"}: ${parts}${unreachable ? `; ${unreachable} unreachable` : ""}`;
}
