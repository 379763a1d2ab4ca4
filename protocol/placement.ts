/**
 * Placement (docs/goal-state.md): which machines of a region run an app. A machine carries
 * labels (`--label pool=web`); an app's placement in a region is a set of labels a machine must
 * all carry, or null for every machine. The regional goal carries it; agents run only the apps
 * placed on them, and relays count only placed machines for a canary.
 */
import { z } from "zod";

export const MAX_LABELS = 16;
export const LABEL_KEY_PATTERN = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;
export const LABEL_VALUE_PATTERN = /^[A-Za-z0-9._-]{0,63}$/;

export type Labels = Readonly<Record<string, string>>;

export const labelsSchema = z
  .record(
    z.string().regex(LABEL_KEY_PATTERN, "a label key is lowercase letters, digits and ._/-"),
    z.string().regex(LABEL_VALUE_PATTERN, "a label value is letters, digits and ._- (≤ 63)"),
  )
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

/** What a region's goal says of its machines: every label must match; none = every machine. */
export const placementSchema = z.strictObject({ labels: labelsSchema });
export type Placement = z.infer<typeof placementSchema>;

/** Whether a machine with `labels` runs an app placed by `placement` (null: every machine). */
export function placedOn(placement: Placement | null | undefined, labels: Labels): boolean {
  if (!placement) return true;
  return Object.entries(placement.labels).every(([k, v]) => labels[k] === v);
}

/**
 * Parses `key=value` labels (flags, or one comma-separated env value) into labels, or the
 * first problem in words.
 */
export function parseLabels(
  items: readonly string[],
): { ok: true; labels: Record<string, string> } | { ok: false; problem: string } {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at <= 0) return { ok: false, problem: `"${item}" is not key=value` };
    const key = item.slice(0, at).trim();
    const value = item.slice(at + 1).trim();
    if (key in labels) return { ok: false, problem: `label ${key} given twice` };
    labels[key] = value;
  }
  const r = labelsSchema.safeParse(labels);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return { ok: false, problem: `${issue.path.join(".") || "labels"}: ${issue.message}` };
  }
  return { ok: true, labels: r.data };
}

/** Canonical text of a label set (sorted keys), to group machines by it. */
export function labelsKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
