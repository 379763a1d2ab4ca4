/**
 * The agent's apps: one AppConverger per app of the region's goal, created when the app is
 * first seen (or at start, for apps applied before). Goals from the relay are verified here
 * (signature, region, expiry, generation not below the applied one) before any converger sees
 * them; status changes are coalesced and sent to the relay.
 */
import { type GoalDocument, verifyGoal } from "../protocol/goal.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { placedOn } from "../protocol/placement.ts";
import type { AppStatus, GoalsMessage } from "../protocol/relay-messages.ts";
import type { Verifier } from "../protocol/signing.ts";
import type { AgentState } from "./agent-state.ts";
import { AppConverger } from "./app-converger.ts";
import { ReleaseChunks } from "./local-chunks.ts";
import type { Logger } from "./log.ts";
import type { PieceSource } from "./piece-source.ts";
import { portRefusal } from "./port-owner.ts";
import { Releases } from "./releases.ts";
import { Supervisor } from "./supervisor.ts";

export interface AgentOptions {
  machineId: string;
  region: string;
  /** The machine's labels: an app whose goal places it elsewhere is not run here. Default none. */
  labels?: Readonly<Record<string, string>>;
  stateDir: string;
  state: AgentState;
  verifier: Verifier;
  logger: Logger;
  manifests: { manifest(buildId: number, signal: AbortSignal): Promise<unknown> };
  source: PieceSource;
  keepReleases: number;
  healthTimeoutMs: number;
  /** After a crash, how long a process must stay healthy before the app is healthy again. */
  settleMs: number;
  downloadConcurrency: number;
  appPortBase: number | null;
  baseEnv: Record<string, string>;
  /** Told when some app's status changed (coalesced by the caller). */
  onStatus: () => void;
  now?: () => Date;
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #apps = new Map<string, Promise<AppConverger>>();
  readonly #ready = new Map<string, AppConverger>();

  constructor(options: AgentOptions) {
    this.#o = options;
  }

  /** Starts every app applied before (they run whatever happens upstream). */
  async start(): Promise<void> {
    const apps = new Set(await this.#o.state.appliedApps());
    for (const app of apps) void (await this.#converger(app)).resume();
  }

  /** Every app's status, for `hello` and `status`. */
  statuses(): AppStatus[] {
    return [...this.#ready.values()].map((c) => c.status);
  }

  status(app: string): AppStatus | undefined {
    return this.#ready.get(app)?.status;
  }

  /** A `goals` frame from the relay: verify each goal, hand the good ones to their app. */
  async onGoals(message: GoalsMessage): Promise<void> {
    const now = (this.#o.now ?? (() => new Date()))();
    for (const signed of message.goals) {
      const verdict = await verifyGoal(this.#o.verifier, signed, { region: this.#o.region, now });
      if (!verdict.ok) {
        this.#o.logger.log("warn", "goal:refused", {
          app: appOf(signed.document),
          reason: verdict.reason,
          message: verdict.message,
        });
        continue;
      }
      await this.offer(verdict.goal);
    }
  }

  /**
   * A verified goal: refused if older than what the app applied (or than its removal here);
   * an app undeployed, or placed on other machines, is stopped and removed.
   */
  async offer(goal: GoalDocument): Promise<void> {
    await this.#removing.get(goal.app);
    const removed = await this.#o.state.removedAt(goal.app);
    if (removed !== null && goal.generation <= removed) return;
    if (goal.undeployed || !placedOn(goal.placement, this.#o.labels ?? {})) {
      return await this.#remove(
        goal.app,
        goal.generation,
        goal.undeployed ? "undeployed" : "not-placed",
      );
    }
    const converger = await this.#converger(goal.app);
    const applied = converger.appliedGeneration;
    if (applied !== undefined && goal.generation < applied) {
      this.#o.logger.log("warn", "goal:refused", {
        app: goal.app,
        reason: "stale-generation",
        message: `goal generation ${goal.generation} is older than applied generation ${applied}`,
      });
      return;
    }
    void converger.offer(goal);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#ready.values()].map((c) => c.stop()));
  }

  /**
   * Stops the app (if it runs here), deletes its releases and logs, and forgets it, so it is
   * no longer reported; one removal at a time per app.
   */
  #remove(app: string, generation: number, reason: "undeployed" | "not-placed"): Promise<void> {
    const prior = this.#removing.get(app) ?? Promise.resolve();
    const next = prior.then(async () => {
      const pending = this.#apps.get(app);
      if (pending) {
        const converger = await pending;
        this.#apps.delete(app);
        this.#ready.delete(app);
        this.#releases.delete(app);
        await converger.stop();
      }
      await this.#o.state.forget(app, generation);
      await Deno.remove(`${this.#o.stateDir}/apps/${app}`, { recursive: true }).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      if (pending) {
        this.#o.logger.log("info", "app:removed", { app, generation, reason });
        this.#o.onStatus();
      }
    });
    this.#removing.set(app, next);
    return next;
  }

  readonly #removing = new Map<string, Promise<void>>();

  #converger(app: string): Promise<AppConverger> {
    let pending = this.#apps.get(app);
    if (!pending) {
      pending = this.#create(app);
      this.#apps.set(app, pending);
    }
    return pending;
  }

  async #create(app: string): Promise<AppConverger> {
    const o = this.#o;
    const root = `${o.stateDir}/apps/${app}`;
    await Deno.mkdir(root, { recursive: true });
    const releases = new Releases(root, app);
    const logFile = `${root}/app.log`;
    const supervisor = new Supervisor({
      app,
      logger: o.logger,
      logFile,
      record: (p) => o.state.setProcess(app, p),
      // Never start an app onto a port another process holds: its answers are not the app's.
      preflight: (spec) => portRefusal(spec.port),
    });
    const converger = new AppConverger({
      app,
      machineId: o.machineId,
      state: o.state,
      releases,
      supervisor,
      source: o.source,
      manifests: o.manifests,
      verifier: o.verifier,
      localChunks: () => this.#localChunks(),
      partialDir: `${o.stateDir}/partial`,
      logger: o.logger,
      keepReleases: o.keepReleases,
      healthTimeoutMs: o.healthTimeoutMs,
      settleMs: o.settleMs,
      logFile,
      downloadConcurrency: o.downloadConcurrency,
      port: (health) => this.#port(app, health),
      baseEnv: o.baseEnv,
      onStatus: () => o.onStatus(),
    });
    await converger.init();
    this.#ready.set(app, converger);
    this.#releases.set(app, releases);
    return converger;
  }

  readonly #releases = new Map<string, Releases>();

  /** Every kept release's file and manifest (the mesh serves peers from them). */
  async keptReleases(): Promise<{ file: string; manifest: Manifest }[]> {
    const files = await Promise.all([...this.#releases.values()].map((r) => r.files()));
    return files.flat();
  }

  async #localChunks(): Promise<ReleaseChunks> {
    const files = await Promise.all([...this.#releases.values()].map((r) => r.files()));
    return new ReleaseChunks(files.flat());
  }

  /** $PORT of an app (see Config.appPortBase). */
  async #port(app: string, health: GoalDocument["health_check"]): Promise<number> {
    const base = this.#o.appPortBase;
    if (base === null && health?.type === "http") return health.port;
    return (base ?? 20_000) + (await this.#o.state.portSlot(app));
  }
}

function appOf(document: string): string | null {
  try {
    const app = (JSON.parse(document) as { app?: unknown }).app;
    return typeof app === "string" ? app.slice(0, 64) : null;
  } catch {
    return null;
  }
}
