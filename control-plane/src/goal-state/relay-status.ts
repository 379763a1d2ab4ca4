import { z } from "zod";

export const MACHINE_STATES = ["pending", "downloading", "installed", "healthy", "failed"] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

/** A relay's report counts as current this long; after that its machines are unreachable. */
export const REPORT_STALE_MS = 30_000;

const Machine = z.strictObject({
  machine_id: z.string().regex(/^[\w.:-]{1,128}$/),
  app: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/),
  build_id: z.int().min(0).nullable(),
  generation: z.int().min(0).nullable(),
  state: z.enum(MACHINE_STATES),
  detail: z.string().max(1024).nullable().optional(),
  /** False while the machine is away from this relay; relays before it said nothing. */
  connected: z.boolean().optional(),
  /** Restarts of the app's process since its release started; relays before step 11: none. */
  restarts: z.int().min(0).optional(),
});
export type MachineReport = z.infer<typeof Machine>;

const RelayId = z.string().regex(/^[\w.:-]{1,128}$/);
const Message = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("hello"),
    relay_id: RelayId,
    url: z.string().max(512).nullable(),
  }),
  z.strictObject({
    type: z.literal("status"),
    relay_id: RelayId,
    machines: z.array(Machine).max(20_000),
  }),
]);
export type RelayMessage = z.infer<typeof Message>;

export function parseRelayMessage(
  raw: string | ArrayBuffer,
): { ok: true; message: RelayMessage } | { ok: false; error: string } {
  if (typeof raw !== "string") return { ok: false, error: "relay messages are JSON text" };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  const r = Message.safeParse(value);
  if (!r.success)
    return {
      ok: false,
      error: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    };
  return { ok: true, message: r.data };
}

export interface RelayReport {
  relay_id: string;
  url: string | null;
  machines: MachineReport[];
  at: number;
}

export interface MachineView extends MachineReport {
  relay_id: string;
  reachable: boolean;
  reported_at: string;
}

export interface RegionSummary {
  relays: {
    relay_id: string;
    url: string | null;
    machines: number;
    last_report_at: string;
    stale: boolean;
  }[];
  machines: MachineView[];
}

/**
 * Every machine the region's relays reported, marked unreachable when its relay went quiet.
 * A machine that moved to another relay is still reported by the old one for a while: each
 * (machine, app) is counted once, from the relay it is connected to, else the freshest report.
 */
export function summarize(reports: RelayReport[], now: number): RegionSummary {
  const relays = reports.map((r) => ({
    relay_id: r.relay_id,
    url: r.url,
    machines: r.machines.length,
    last_report_at: new Date(r.at).toISOString(),
    stale: now - r.at > REPORT_STALE_MS,
  }));
  const best = new Map<string, { view: MachineView; rank: number; at: number }>();
  for (const r of reports) {
    const reachable = now - r.at <= REPORT_STALE_MS;
    for (const m of r.machines) {
      // Connected through a live relay beats away, which beats a relay gone quiet.
      const rank = (reachable ? 2 : 0) + (m.connected === false ? 0 : 1);
      const key = `${m.machine_id}\n${m.app}`;
      const prior = best.get(key);
      if (prior && (prior.rank > rank || (prior.rank === rank && prior.at >= r.at))) continue;
      const view = {
        ...m,
        relay_id: r.relay_id,
        reachable,
        reported_at: new Date(r.at).toISOString(),
      };
      best.set(key, { view, rank, at: r.at });
    }
  }
  return { relays, machines: [...best.values()].map((b) => b.view) };
}
