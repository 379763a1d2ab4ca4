import { DurableObject } from "cloudflare:workers";
import { type SignedGoal, signGoal } from "../../../protocol/goal.ts";
import { signingKeys } from "../artifacts/signing-key.ts";
import type { Env } from "../env.ts";
import { log } from "../log.ts";
import {
  applyGlobal,
  applySet,
  emptyGlobal,
  emptyRegional,
  type GlobalState,
  type RegionalState,
  type SetGoal,
  type SetResult,
} from "./core.ts";
import {
  parseRelayMessage,
  type RegionSummary,
  type RelayReport,
  summarize,
} from "./relay-status.ts";
import { globalStub, regionStub } from "./stubs.ts";

/** Regional instances re-read global this often, so a missed push heals by itself. */
export const REREAD_MS = 10_000;
/** A failed push to a region is retried this often until it lands. */
export const PUSH_RETRY_MS = 2_000;
/** Signed goals live this long and are re-signed when half of it is left. */
export const GOAL_TTL_MS = 60 * 60_000;
/** Longest a goal long-poll waits. */
export const MAX_WAIT_MS = 30_000;

interface Stored {
  role: "global" | "region";
  region?: string;
  global?: GlobalState;
  pendingPushes?: string[];
  regional?: RegionalState;
  signed?: Record<string, SignedGoal & { expires_at: string; generation: number }>;
}

/**
 * One class, two roles (DESIGN section 7): the `global` instance holds every app's goal and
 * pushes changes to the regions; `region:<name>` instances hold their region's signed goals,
 * the relays' WebSockets (hibernation API) and the relays' status. The logic is in core.ts;
 * this class loads, applies, stores and sends.
 */
export class GoalState extends DurableObject<Env> {
  #waiters = new Set<() => void>();

  async #load(): Promise<Stored> {
    return (await this.ctx.storage.get<Stored>("state")) ?? { role: "global" };
  }

  async #store(s: Stored): Promise<void> {
    await this.ctx.storage.put("state", s);
  }

  // ---- global role ----

  async setGoal(cmd: SetGoal): Promise<SetResult> {
    // Load-apply-store runs alone: racing deploys must each see the generation the last one
    // stored (measured: without this gate two of four racing deploys got the same generation).
    const result = await this.ctx.blockConcurrencyWhile(async () => {
      const s = await this.#load();
      const applied = applySet(s.global ?? emptyGlobal(), cmd);
      if (applied.result.ok && applied.result.push.length > 0) {
        const pending = new Set([...(s.pendingPushes ?? []), ...applied.result.push]);
        await this.#store({
          ...s,
          role: "global",
          global: applied.state,
          pendingPushes: [...pending],
        });
      }
      return applied.result;
    });
    if (result.ok && result.push.length > 0) await this.#pushPending();
    return result;
  }

  async snapshot(): Promise<GlobalState> {
    return (await this.#load()).global ?? emptyGlobal();
  }

  /** Pushes the global state to every region still pending, all at once; failures retry by alarm. */
  async #pushPending(): Promise<void> {
    const s = await this.#load();
    const global = s.global ?? emptyGlobal();
    const regions = s.pendingPushes ?? [];
    const results = await Promise.allSettled(
      regions.map((region) => regionStub(this.env, region).applySnapshot(region, global)),
    );
    const failed = regions.filter((_, i) => results[i]!.status === "rejected");
    for (const [i, r] of results.entries()) {
      if (r.status === "rejected")
        log.warn("goal:push-failed", { region: regions[i], error: String(r.reason) });
    }
    await this.ctx.blockConcurrencyWhile(async () => {
      const latest = await this.#load();
      // Keep regions that became pending while these pushes were in flight.
      const added = (latest.pendingPushes ?? []).filter((r) => !regions.includes(r));
      await this.#store({ ...latest, pendingPushes: [...new Set([...failed, ...added])] });
    });
    if (failed.length > 0) await this.ctx.storage.setAlarm(Date.now() + PUSH_RETRY_MS);
  }

  // ---- regional role ----

  async applySnapshot(
    region: string,
    global: GlobalState,
  ): Promise<{ version: number; changed: string[] }> {
    const s = await this.#regional(region);
    const { state, changed } = applyGlobal(s.regional!, global);
    if (changed.length > 0) {
      const signed = { ...s.signed };
      for (const app of changed) signed[app] = await this.#sign(state, app);
      await this.#store({ ...s, regional: state, signed });
      this.#announce(state);
    }
    return { version: state.version, changed };
  }

  /** The region's signed goals; waits (≤ waitMs) for a version newer than `since`. */
  async goals(
    region: string,
    since: number,
    waitMs: number,
  ): Promise<{ version: number; goals: SignedGoal[] }> {
    let s = await this.#regional(region);
    if (s.regional!.version <= since && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(waitMs, MAX_WAIT_MS));
        this.#waiters.add(done);
      });
      s = await this.#load();
    }
    const goals = Object.values(s.signed ?? {}).map(({ document, signature }) => ({
      document,
      signature,
    }));
    return { version: s.regional!.version, goals };
  }

  async summary(region: string): Promise<RegionSummary> {
    await this.#regional(region);
    const reports = await this.ctx.storage.list<RelayReport>({ prefix: "relay:" });
    return summarize([...reports.values()], Date.now());
  }

  /** Relay subscription: the route has checked the relay's token; this holds the socket. */
  override async fetch(request: Request): Promise<Response> {
    const region = request.headers.get("X-Fleetship-Region");
    if (!region || request.headers.get("Upgrade") !== "websocket") {
      return new Response("expected a relay WebSocket upgrade", { status: 426 });
    }
    const s = await this.#regional(region);
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ token: request.headers.get("X-Fleetship-Relay-Token-Id") ?? "?" });
    server.send(JSON.stringify(goalMessage(s.regional!)));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const parsed = parseRelayMessage(message);
    if (!parsed.ok) {
      ws.send(JSON.stringify({ type: "error", message: parsed.error }));
      return;
    }
    const msg = parsed.message;
    const prior = await this.ctx.storage.get<RelayReport>(`relay:${msg.relay_id}`);
    const report: RelayReport = {
      relay_id: msg.relay_id,
      url: msg.type === "hello" ? msg.url : (prior?.url ?? null),
      machines: msg.type === "status" ? msg.machines : (prior?.machines ?? []),
      at: Date.now(),
    };
    await this.ctx.storage.put(`relay:${msg.relay_id}`, report);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 ? 1000 : code, "closing");
    } catch {
      // already closed
    }
  }

  async #regional(region: string): Promise<Stored> {
    const s = await this.#load();
    if (s.role === "region" && s.regional) return s;
    const init: Stored = {
      ...s,
      role: "region",
      region,
      regional: emptyRegional(region),
      signed: {},
    };
    await this.#store(init);
    await this.ctx.storage.setAlarm(Date.now() + REREAD_MS);
    return init;
  }

  async #sign(state: RegionalState, app: string) {
    const g = state.apps[app]!;
    const { signer } = await signingKeys(this.env.SIGNING_KEY);
    const now = Date.now();
    const expires_at = new Date(now + GOAL_TTL_MS).toISOString();
    const signed = await signGoal(signer, {
      version: 1,
      region: state.region,
      app,
      generation: g.generation,
      deployment_id: g.deployment_id,
      build_id: g.build_id,
      manifest_digest: g.manifest_digest,
      run_command: g.run_command,
      health_check: g.health_check,
      canary: g.canary,
      issued_at: new Date(now).toISOString(),
      expires_at,
    });
    return { ...signed, expires_at, generation: g.generation };
  }

  #announce(state: RegionalState): void {
    const text = JSON.stringify(goalMessage(state));
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // a relay that went away; it re-subscribes and gets the current version
      }
    }
    for (const wake of [...this.#waiters]) wake();
  }

  override async alarm(): Promise<void> {
    const s = await this.#load();
    if (s.role === "global") {
      if ((s.pendingPushes ?? []).length > 0) await this.#pushPending();
      return;
    }
    await this.ctx.storage.setAlarm(Date.now() + REREAD_MS);
    const region = s.region!;
    const global = await globalStub(this.env).snapshot();
    await this.applySnapshot(region, global);
    // Re-sign goals with less than half their lifetime left; the generation is unchanged.
    const latest = await this.#load();
    const signed = { ...latest.signed };
    let resigned = false;
    for (const [app, g] of Object.entries(signed)) {
      if (Date.parse(g.expires_at) - Date.now() < GOAL_TTL_MS / 2) {
        signed[app] = await this.#sign(latest.regional!, app);
        resigned = true;
      }
    }
    if (resigned) await this.#store({ ...latest, signed });
  }
}

function goalMessage(state: RegionalState) {
  const apps = Object.fromEntries(Object.values(state.apps).map((a) => [a.app, a.generation]));
  return { type: "goal", version: state.version, apps };
}
