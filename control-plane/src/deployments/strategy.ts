import { z } from "@hono/zod-openapi";

export const StrategySchema = z
  .discriminatedUnion("type", [
    z.strictObject({
      type: z.literal("all-at-once"),
      /** Machines must be healthy by then; default 30 min. */
      deadline_s: z
        .number()
        .int()
        .min(10)
        .max(24 * 3600)
        .optional(),
      max_failure_ratio: z.number().min(0).max(1).optional(),
    }),
    z.strictObject({
      type: z.literal("staged"),
      /** A canary in the first region: a percentage of its machines, or a number of them. */
      canary: z
        .strictObject({
          percent: z.number().gt(0).max(100).optional(),
          machines: z.number().int().min(1).max(100_000).optional(),
        })
        .optional(),
      /** Region order; default the app's regions in their configured order. */
      regions: z
        .array(z.string().regex(/^[a-z][a-z0-9-]{1,30}$/))
        .min(1)
        .max(32)
        .optional(),
      /** How long each wave must stay healthy before the next starts; default 60 s. */
      bake_s: z
        .number()
        .int()
        .min(0)
        .max(24 * 3600)
        .optional(),
      /** How long a wave may take to become healthy; default 10 min. */
      wave_deadline_s: z
        .number()
        .int()
        .min(10)
        .max(24 * 3600)
        .optional(),
      /** Failed machines a wave tolerates, as a fraction of its machines; default 0. */
      max_failure_ratio: z.number().min(0).max(1).optional(),
    }),
  ])
  .openapi("Strategy");
export type Strategy = z.infer<typeof StrategySchema>;

export interface Wave {
  name: string;
  kind: "canary" | "regions";
  regions: string[];
  /** Canary only: by percentage, or by machine count (turned into a percentage when it starts). */
  percent?: number;
  machines?: number;
}

export interface Plan {
  waves: Wave[];
  bake_ms: number;
  wave_deadline_ms: number;
  max_failure_ratio: number;
}

/**
 * The rollout plan of a strategy for an app's target regions, or the reasons it is impossible,
 * so that a bad plan is a 400 when the deployment is created, not a surprise when it runs.
 */
export function planFor(
  strategy: Strategy,
  targets: readonly string[],
): { ok: true; plan: Plan } | { ok: false; problems: string[] } {
  if (strategy.type === "all-at-once") {
    return {
      ok: true,
      plan: {
        waves: [{ name: "all regions", kind: "regions", regions: [...targets] }],
        bake_ms: 0,
        wave_deadline_ms: (strategy.deadline_s ?? 1800) * 1000,
        max_failure_ratio: strategy.max_failure_ratio ?? 0,
      },
    };
  }
  const problems: string[] = [];
  const order = strategy.regions ?? [...targets];
  const unknown = order.filter((r) => !targets.includes(r));
  if (unknown.length > 0)
    problems.push(
      `regions ${unknown.join(", ")} are not target regions of this app (${targets.join(", ")})`,
    );
  if (new Set(order).size !== order.length) problems.push("regions must not repeat");
  const missing = targets.filter((r) => !order.includes(r));
  if (missing.length > 0)
    problems.push(`regions must cover every target region; missing ${missing.join(", ")}`);
  const canary = strategy.canary;
  if (canary && (canary.percent === undefined) === (canary.machines === undefined)) {
    problems.push("canary takes exactly one of percent or machines");
  }
  if (canary?.percent === 100)
    problems.push("a canary of 100% is the whole region: drop the canary instead");
  if (problems.length > 0) return { ok: false, problems };
  const waves: Wave[] = [];
  if (canary) {
    waves.push({
      name: `canary in ${order[0]}`,
      kind: "canary",
      regions: [order[0]!],
      ...(canary.percent !== undefined ? { percent: canary.percent } : {}),
      ...(canary.machines !== undefined ? { machines: canary.machines } : {}),
    });
  }
  for (const region of order) waves.push({ name: region, kind: "regions", regions: [region] });
  return {
    ok: true,
    plan: {
      waves,
      bake_ms: (strategy.bake_s ?? 60) * 1000,
      wave_deadline_ms: (strategy.wave_deadline_s ?? 600) * 1000,
      max_failure_ratio: strategy.max_failure_ratio ?? 0,
    },
  };
}
