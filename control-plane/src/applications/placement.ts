import { z } from "@hono/zod-openapi";
import { labelsSchema, type Placement } from "../../../protocol/placement.ts";
import type { AppPlacement } from "../db/schema.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { placedMachines } from "../goal-state/relay-status.ts";
import { regionStub } from "../goal-state/stubs.ts";
import { Region } from "../routes/schemas.ts";

/** An application's placement as the API takes it; a region's entry wins over `labels`. */
export const AppPlacementSchema = z
  .strictObject({
    labels: labelsSchema.optional(),
    regions: z.record(Region, z.strictObject({ labels: labelsSchema })).optional(),
  })
  .openapi("Placement", {
    description:
      'Which machines run the app: every label must match (`{"labels":{"pool":"web"}}`), per region if given there; `{}` or null: every machine',
  });

/** The placement an app's goal carries in `region` (null: every machine). */
export function placementIn(p: AppPlacement | null | undefined, region: string): Placement | null {
  const labels = p?.regions?.[region]?.labels ?? p?.labels ?? {};
  return Object.keys(labels).length > 0 ? { labels } : null;
}

export const labelsText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");

/**
 * Refuses (409 `no_placed_machines`) a deployment whose placement matches no machine that the
 * live relays of a target region count: it would wait for machines that may never come.
 * Machines a relay could not list by labels count as possible matches.
 */
export async function placementRefusal(
  env: Env,
  regions: string[],
  placement: AppPlacement | null | undefined,
): Promise<ApiError | null> {
  for (const region of regions) {
    const p = placementIn(placement, region);
    if (!p) continue;
    const summary = await regionStub(env, region).summary(region);
    const { n, unknown } = placedMachines(summary, p);
    if (n > 0 || unknown > 0) continue;
    const known = summary.label_sets
      .map((l) => `${labelsText(l.labels) || "no labels"} ×${l.n}`)
      .join("; ");
    return new ApiError(
      409,
      "no_placed_machines",
      `no connected machine in ${region} carries ${labelsText(p.labels)} (${known ? `machines there: ${known}` : "no machine is connected there"}); pass "wait_for_machines": true to deploy anyway`,
      { region, placement: p },
    );
  }
  return null;
}
