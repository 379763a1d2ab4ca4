import { DurableObject } from "cloudflare:workers";
import { and, eq, ne, sql } from "drizzle-orm";
import type { HealthCheck } from "../../../protocol/goal.ts";
import { placementIn } from "../applications/placement.ts";
import { type Config, parseConfig } from "../config.ts";
import { type Db, openDb } from "../db/client.ts";
import { applications, builds, deployments, nowMs } from "../db/schema.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import type { RelayAppView } from "../goal-state/relay-status.ts";
import { globalStub, regionStub } from "../goal-state/stubs.ts";
import { log } from "../log.ts";
import { targetRegions } from "../replication/start.ts";
import { type Progress, rolloutProgress } from "./progress.ts";
import {
  type Action,
  advance,
  initialState,
  type Observation,
  pause,
  type RolloutState,
  resume,
  touched,
  waitingReason,
} from "./rollout-core.ts";
import { planFor, type Strategy } from "./strategy.ts";

/** How often a rollout looks at its machines. */
export const TICK_MS = 2_000;

type Row = typeof deployments.$inferSelect;

async function observe(
  env: Env,
  db: Db,
  config: Config,
  row: Row,
): Promise<{ obs: Observation; progress: Progress }> {
  const regions = await targetRegions(db, config, row.app);
  const summaries = await Promise.all(
    regions.map(async (region) => ({
      region,
      summary: await regionStub(env, region).summary(region),
    })),
  );
  const counts: Record<string, RelayAppView[]> = {};
  const relayReports: Record<string, number[]> = {};
  for (const { region, summary } of summaries) {
    counts[region] = summary.apps[row.app] ?? [];
    relayReports[region] = summary.relays
      .filter((r) => !r.stale)
      .map((r) => Date.parse(r.last_report_at));
  }
  return {
    obs: {
      app: row.app,
      deploymentId: row.id,
      buildId: row.buildId,
      hasPrevious: row.previousBuildId !== null,
      counts,
      relayReports,
    },
    progress: rolloutProgress(
      row.app,
      row.buildId,
      summaries.map(({ region, summary }) => ({
        region,
        counts: counts[region] ?? [],
        problems: summary.problems,
      })),
    ),
  };
}

/** The progress of a deployment now, from its regions' relay reports. */
export async function deploymentProgress(
  env: Env,
  db: Db,
  row: Row,
): Promise<Progress & { rollout: RolloutState | null }> {
  const { obs, progress } = await observe(env, db, parseConfig(env), row);
  const state = row.rollout as RolloutState | null;
  let waiting: string | null = null;
  if (row.status === "ROLLING") {
    // Live words only once the rollout runs: the reason stored in the row is the last step's
    // (up to a tick old), and showing it beside live counts once read "healthy 3/3" next to
    // "waiting: 2 of 3 machines still downloading". Before the first step, it is all there is.
    waiting = state
      ? (waitingReason(state, obs, Date.now()) ??
        progress.waiting ??
        "every machine is healthy; finishing on the next step")
      : (progress.waiting ?? row.reason);
  }
  return { ...progress, waiting, rollout: state };
}

export function initialRollout(strategy: Strategy, targets: string[]): RolloutState {
  const planned = planFor(strategy, targets);
  if (!planned.ok)
    throw new ApiError(
      400,
      "invalid_strategy",
      `impossible rollout plan: ${planned.problems.join("; ")}`,
      { problems: planned.problems },
    );
  return initialState(planned.plan);
}

/**
 * One instance per deployment (`deployment:<id>`), driven by its alarm every TICK_MS: it feeds
 * the machines' reports to the pure rollout core (rollout-core.ts) and carries out what it
 * decides: set a wave's goal, revert touched regions to the previous build, end the
 * deployment. The rollout's state lives in the deployment's row, so a restarted control plane
 * carries on where it was; operator commands (pause, resume, abort) run here too, one at a time.
 */
export class Rollout extends DurableObject<Env> {
  /** Starts the rollout: runs its first step at once (setting the first wave's goal). */
  async start(deploymentId: number): Promise<void> {
    await this.ctx.storage.put("deployment_id", deploymentId);
    // The alarm is set before the first step: if that step throws (the database away), the
    // alarm runs it again; the caller was told the rollout retries by itself.
    await this.#arm();
    await this.ctx.blockConcurrencyWhile(() => this.#step());
  }

  async command(cmd: {
    type: "pause" | "resume" | "abort";
    by: string;
  }): Promise<{ ok: boolean; message: string }> {
    return this.ctx.blockConcurrencyWhile(async () => {
      const ctx = await this.#context();
      if (!ctx) return { ok: false, message: "deployment not found" };
      const { db, row } = ctx;
      if (row.status !== "ROLLING")
        return { ok: false, message: `deployment ${row.id} is ${row.status}` };
      let state = row.rollout as RolloutState;
      if (cmd.type === "pause") state = pause(state, cmd.by, Date.now());
      else if (cmd.type === "resume") state = resume(state);
      else {
        await this.#execute(ctx, state, [
          { type: "revert", regions: touched(state) },
          {
            type: "end",
            status: "ABORTED",
            reason: `aborted by ${cmd.by}; waves already rolled are reverted`,
          },
        ]);
        return { ok: true, message: "aborted" };
      }
      await db
        .update(deployments)
        .set({ rollout: state, reason: state.paused ? `paused by ${cmd.by}` : null })
        .where(and(eq(deployments.id, row.id), eq(deployments.status, "ROLLING")));
      if (cmd.type === "resume") await this.#arm();
      return { ok: true, message: cmd.type === "pause" ? "paused" : "resumed" };
    });
  }

  override async alarm(): Promise<void> {
    let more = true;
    try {
      more = await this.ctx.blockConcurrencyWhile(() => this.#step());
    } catch (err) {
      // Never left to workerd's few alarm retries: a rollout whose step keeps failing keeps
      // trying every tick (and says so), so no deployment stays ROLLING with no one driving it.
      log.error("rollout:step-failed", {
        deployment_id: await this.ctx.storage.get<number>("deployment_id"),
        error: err instanceof Error ? err.message : String(err),
      });
    }
    if (more) await this.#arm();
  }

  async #arm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null)
      await this.ctx.storage.setAlarm(Date.now() + TICK_MS);
  }

  async #context() {
    const id = await this.ctx.storage.get<number>("deployment_id");
    if (id === undefined) return null;
    const config = parseConfig(this.env);
    const db = openDb(config);
    const row = await db.query.deployments.findFirst({ where: eq(deployments.id, id) });
    return row ? { db, config, row } : null;
  }

  /** One step; returns whether the rollout goes on. */
  async #step(): Promise<boolean> {
    const ctx = await this.#context();
    if (ctx?.row.status !== "ROLLING") return false;
    const state = ctx.row.rollout as RolloutState | null;
    if (!state) return false;
    const { obs } = await observe(this.env, ctx.db, ctx.config, ctx.row);
    const now = Date.now();
    const next = advance(state, obs, now);
    const ended = await this.#execute(ctx, next.state, next.actions);
    if (ended) return false;
    const fresh = await ctx.db.query.deployments.findFirst({
      where: eq(deployments.id, ctx.row.id),
    });
    if (fresh?.status !== "ROLLING") return false;
    const reason = waitingReason(fresh.rollout as RolloutState, obs, now);
    await ctx.db
      .update(deployments)
      .set({ reason })
      .where(and(eq(deployments.id, ctx.row.id), eq(deployments.status, "ROLLING")));
    return true;
  }

  /** Carries out the core's actions; returns whether the deployment ended. */
  async #execute(
    ctx: { db: Db; config: Config; row: Row },
    state: RolloutState,
    actions: Action[],
  ): Promise<boolean> {
    const { db, row } = ctx;
    const app = (await db.query.applications.findFirst({ where: eq(applications.name, row.app) }))!;
    const setGoal = async (
      buildId: number,
      regions: string[],
      canary?: { region: string; percent: number },
    ) => {
      const build = (await db.query.builds.findFirst({ where: eq(builds.id, buildId) }))!;
      return globalStub(this.env).setGoal({
        type: "set",
        app: row.app,
        deployment_id: row.id,
        build_id: buildId,
        manifest_digest: build.manifestDigest!,
        run_command: app.runCommand,
        health_check: (app.healthCheck as HealthCheck | null) ?? null,
        regions,
        canary,
        placement: Object.fromEntries(regions.map((r) => [r, placementIn(app.placement, r)])),
      });
    };
    for (const action of actions) {
      if (action.type === "start-wave") {
        let canary: { region: string; percent: number } | undefined;
        if (action.canary) {
          const region = action.regions[0]!;
          // How many of the region's connected machines fall in each canary bucket of this
          // deployment (the relays count their own): the percentage then picks the asked
          // number of machines (ties aside), and never none while the region has some.
          const hist = await regionStub(this.env, region).canaryBuckets(
            region,
            row.id,
            row.app,
            placementIn(app.placement, region)?.labels ?? null,
          );
          const total = hist.reduce((n, x) => n + x, 0);
          let percent = action.canary.percent ?? 100;
          if (total > 0) {
            let want = 0;
            if (action.canary.machines !== undefined)
              want = Math.min(action.canary.machines, total);
            else if (!hist.slice(0, Math.ceil(percent)).some((n) => n > 0)) want = 1;
            if (want > 0) {
              let seen = 0;
              for (const [b, n] of hist.entries()) {
                seen += n;
                if (seen >= want) {
                  percent = b + 1;
                  break;
                }
              }
            }
          }
          canary = { region, percent };
          state.waves[action.wave]!.percent = percent;
        }
        const result = await setGoal(row.buildId, action.regions, canary);
        if (!result.ok) {
          await db
            .update(deployments)
            .set({
              status: "SUPERSEDED",
              supersededBy: result.current_deployment_id,
              reason: `superseded by deployment ${result.current_deployment_id}, created after it`,
              finishedAt: nowMs,
              rollout: state,
            })
            .where(and(eq(deployments.id, row.id), eq(deployments.status, "ROLLING")));
          return true;
        }
        state.waves[action.wave]!.generation = result.generation;
        const first = action.wave === 0;
        await db.batch([
          db
            .update(deployments)
            .set({
              rollout: state,
              generation: result.generation,
              ...(first ? { previousBuildId: result.previous_build_id } : {}),
            })
            .where(and(eq(deployments.id, row.id), eq(deployments.status, "ROLLING"))),
          db
            .update(deployments)
            .set({
              status: "SUPERSEDED",
              supersededBy: row.id,
              reason: `superseded by deployment ${row.id}`,
              finishedAt: nowMs,
            })
            .where(
              and(
                eq(deployments.app, row.app),
                eq(deployments.status, "ROLLING"),
                ne(deployments.id, row.id),
                sql`id < ${row.id}`,
              ),
            ),
        ]);
        if (first) row.previousBuildId = result.previous_build_id;
      } else if (action.type === "revert") {
        if (row.previousBuildId !== null && action.regions.length > 0) {
          const result = await setGoal(row.previousBuildId, action.regions);
          if (result.ok)
            log.info("deployment:reverted", {
              deployment_id: row.id,
              regions: action.regions,
              generation: result.generation,
            });
        }
      } else {
        await db
          .update(deployments)
          .set({ status: action.status, reason: action.reason, finishedAt: nowMs, rollout: state })
          .where(and(eq(deployments.id, row.id), eq(deployments.status, "ROLLING")));
        log.info("deployment:ended", {
          deployment_id: row.id,
          status: action.status,
          reason: action.reason,
        });
        return true;
      }
    }
    await db
      .update(deployments)
      .set({ rollout: state })
      .where(and(eq(deployments.id, row.id), eq(deployments.status, "ROLLING")));
    return false;
  }
}

export function rolloutStub(env: Env, deploymentId: number): DurableObjectStub<Rollout> {
  return env.ROLLOUT.get(
    env.ROLLOUT.idFromName(`deployment:${deploymentId}`),
  ) as DurableObjectStub<Rollout>;
}
