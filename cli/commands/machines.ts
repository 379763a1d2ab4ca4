import type { Context } from "../context.ts";
import { relativeTime, status, table } from "../format.ts";
import type { Machine, Relay } from "../types.ts";

interface Page {
  machines: Machine[];
  relays: Relay[];
  next_cursor: string | null;
  partial: { region: string; relay_id: string }[];
}

/**
 * `machines [--region R] [--app A] [--state S] [--cursor C | --all]`: what machines run, as
 * their relays last reported, a page at a time (relays answer for their own machines); `--all`
 * follows the pages to the end.
 */
export async function machines(
  ctx: Context,
  o: {
    region?: string | undefined;
    app?: string | undefined;
    state?: string | undefined;
    cursor?: string | undefined;
    all?: boolean | undefined;
  },
): Promise<void> {
  const api = await ctx.api();
  const params = new URLSearchParams();
  if (o.region) params.set("region", o.region);
  if (o.app) params.set("app", o.app);
  if (o.state) params.set("state", o.state);
  let cursor = o.cursor ?? null;
  const body: Page = { machines: [], relays: [], next_cursor: null, partial: [] };
  do {
    if (cursor) params.set("cursor", cursor);
    const page = await api.get<Page>(`/v1/machines${params.size > 0 ? `?${params}` : ""}`);
    body.machines.push(...page.machines);
    body.relays = page.relays;
    body.partial.push(...page.partial);
    body.next_cursor = page.next_cursor;
    cursor = page.next_cursor;
  } while (o.all && cursor);
  if (ctx.json) return ctx.printJson(body);
  const now = ctx.now();
  const scope = [o.region && `in ${o.region}`, o.app && `running ${o.app}`, o.state]
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
    ctx.out(`${summary(body.machines)}${body.next_cursor ? " on this page" : ""}\n`);
    if (body.next_cursor) {
      ctx.out(`More machines: --cursor ${body.next_cursor} for the next page, or --all.\n`);
    }
    // Why each failed machine failed: the agent's own words (exit code, restarts, log lines).
    for (const m of body.machines.filter((x) => x.state === "failed" && x.detail)) {
      ctx.out(`  ${ctx.paint("red", `${m.machine_id} ${m.app}`)} (${m.region}): ${m.detail}\n`);
    }
  }
  for (const p of body.partial) {
    ctx.out(
      ctx.paint(
        "yellow",
        `Relay ${p.relay_id} (${p.region}) did not answer in time: its machines are missing.\n`,
      ),
    );
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
