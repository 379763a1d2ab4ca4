import { z } from "zod";
import { DIGEST_PATTERN } from "./hash.ts";
import { APP_NAME_PATTERN } from "./manifest.ts";
import { type Placement, placementSchema } from "./placement.ts";
import type { Signer, Verifier, VerifyFailure } from "./signing.ts";

/**
 * The goal-state document (docs/goal-state.md): what one app should run in one region, signed
 * by the control plane as kind `goal-state`. Agents act on nothing else.
 */
export const GOAL_VERSION = 1;

export type HealthCheck =
  | { readonly type: "http"; readonly path: string; readonly port: number }
  | { readonly type: "command"; readonly command: string };

export interface Canary {
  readonly build_id: number;
  readonly manifest_digest: string;
  /** Machines with canaryBucket(machine_id, deployment_id) < percent run the canary build. */
  readonly percent: number;
}

export interface GoalDocument {
  readonly version: typeof GOAL_VERSION;
  readonly region: string;
  readonly app: string;
  readonly generation: number;
  readonly deployment_id: number;
  readonly build_id: number;
  readonly manifest_digest: string;
  readonly run_command: string;
  readonly health_check: HealthCheck | null;
  readonly canary: Canary | null;
  /**
   * Which machines of the region run the app (step 12): those carrying every label; absent or
   * null, every machine. A machine not placed stops the app and removes it.
   */
  readonly placement?: Placement | null | undefined;
  /**
   * The app was undeployed from the region under this generation (step 12): every machine
   * stops it and removes it. The build fields name the last build it ran.
   */
  readonly undeployed?: true | undefined;
  readonly issued_at: string;
  readonly expires_at: string;
}

const id = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const digest = z.string().regex(DIGEST_PATTERN);
const healthSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("http"),
    path: z.string().min(1).max(256),
    port: z.int().min(1).max(65535),
  }),
  z.strictObject({ type: z.literal("command"), command: z.string().min(1).max(4096) }),
]);

export const goalSchema = z.strictObject({
  version: z.literal(GOAL_VERSION),
  region: z.string().regex(/^[a-z][a-z0-9-]{1,30}$/),
  app: z.string().regex(APP_NAME_PATTERN),
  generation: id,
  deployment_id: id,
  build_id: id,
  manifest_digest: digest,
  run_command: z.string().min(1).max(4096),
  health_check: healthSchema.nullable(),
  canary: z
    .strictObject({ build_id: id, manifest_digest: digest, percent: z.number().min(0).max(100) })
    .nullable(),
  placement: placementSchema.nullable().optional(),
  undeployed: z.literal(true).optional(),
  issued_at: z.iso.datetime(),
  expires_at: z.iso.datetime(),
});

export class GoalError extends Error {
  override readonly name = "GoalError";
}

/**
 * The canonical bytes of a goal: UTF-8 JSON, fixed key order, no whitespace. `placement`
 * (label keys sorted) and `undeployed` appear only when set, so a goal without them has the
 * bytes it had before step 12.
 */
export function encodeGoal(goal: GoalDocument): Uint8Array {
  const g = goalSchema.parse(goal);
  const health =
    g.health_check === null
      ? null
      : g.health_check.type === "http"
        ? { type: "http", path: g.health_check.path, port: g.health_check.port }
        : { type: "command", command: g.health_check.command };
  const canary =
    g.canary === null
      ? null
      : {
          build_id: g.canary.build_id,
          manifest_digest: g.canary.manifest_digest,
          percent: g.canary.percent,
        };
  return new TextEncoder().encode(
    JSON.stringify({
      version: g.version,
      region: g.region,
      app: g.app,
      generation: g.generation,
      deployment_id: g.deployment_id,
      build_id: g.build_id,
      manifest_digest: g.manifest_digest,
      run_command: g.run_command,
      health_check: health,
      canary,
      ...(g.placement
        ? {
            placement: {
              labels: Object.fromEntries(
                Object.entries(g.placement.labels).sort(([a], [b]) => (a < b ? -1 : 1)),
              ),
            },
          }
        : {}),
      ...(g.undeployed ? { undeployed: true } : {}),
      issued_at: g.issued_at,
      expires_at: g.expires_at,
    }),
  );
}

/** A goal as it travels: the canonical JSON text and its base64 signature. */
export interface SignedGoal {
  readonly document: string;
  readonly signature: string;
}

export async function signGoal(signer: Signer, goal: GoalDocument): Promise<SignedGoal> {
  const bytes = encodeGoal(goal);
  return {
    document: new TextDecoder().decode(bytes),
    signature: await signer.signDocument("goal-state", bytes),
  };
}

export type GoalVerifyResult =
  | { readonly ok: true; readonly goal: GoalDocument }
  | {
      readonly ok: false;
      readonly reason:
        | VerifyFailure
        | "invalid-goal"
        | "wrong-region"
        | "expired"
        | "stale-generation";
      readonly message: string;
    };

/**
 * The goal, only if it is signed by a trusted key, canonical, for `region`, unexpired at `now`,
 * and not older than the generation the caller last applied for that app (a replayed or stale
 * goal cannot move an agent backwards; the same generation again is accepted, idempotently).
 */
export async function verifyGoal(
  verifier: Verifier,
  signed: { readonly document: string; readonly signature: string | null | undefined },
  expect: { readonly region: string; readonly now: Date; readonly appliedGeneration?: number },
): Promise<GoalVerifyResult> {
  const bytes = new TextEncoder().encode(signed.document);
  const verdict = await verifier.verifyDocument("goal-state", {
    bytes,
    signature: signed.signature,
  });
  if (!verdict.ok) return verdict;
  let goal: GoalDocument;
  try {
    const parsed = goalSchema.safeParse(JSON.parse(signed.document));
    if (!parsed.success) throw new GoalError(parsed.error.issues.map((i) => i.message).join("; "));
    goal = parsed.data;
    if (new TextDecoder().decode(encodeGoal(goal)) !== signed.document) {
      throw new GoalError("not in canonical form");
    }
  } catch (err) {
    return {
      ok: false,
      reason: "invalid-goal",
      message: `goal refused: ${err instanceof Error ? err.message : err}`,
    };
  }
  if (goal.region !== expect.region) {
    return {
      ok: false,
      reason: "wrong-region",
      message: `goal is for ${goal.region}, not ${expect.region}`,
    };
  }
  if (Date.parse(goal.expires_at) <= expect.now.getTime()) {
    return {
      ok: false,
      reason: "expired",
      message: `goal generation ${goal.generation} expired at ${goal.expires_at}`,
    };
  }
  if (expect.appliedGeneration !== undefined && goal.generation < expect.appliedGeneration) {
    return {
      ok: false,
      reason: "stale-generation",
      message: `goal generation ${goal.generation} is older than applied generation ${expect.appliedGeneration}`,
    };
  }
  return { ok: true, goal };
}

/**
 * A machine's stable bucket in [0, 100) for the canary of deployment `deploymentId` (FNV-1a,
 * runtime-neutral): machines whose bucket is below the goal's `canary.percent` run the canary.
 * Keyed on the deployment, not the generation, so the control plane knows the canary's
 * machines before it sets the goal, and a different deployment picks different machines.
 */
/** What a goal asks machine `machineId` to run: the canary build if it falls in its share. */
export function targetOf(
  goal: GoalDocument,
  machineId: string,
): { build_id: number; manifest_digest: string } {
  const c = goal.canary;
  if (c && canaryBucket(machineId, goal.deployment_id) < c.percent) return c;
  return goal;
}

export function canaryBucket(machineId: string, deploymentId: number): number {
  let h = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(`${machineId}/${deploymentId}`)) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 100;
}
