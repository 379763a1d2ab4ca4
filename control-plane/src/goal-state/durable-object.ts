import { DurableObject } from "cloudflare:workers";
import { type SignedGoal, signGoal } from "../../../protocol/goal.ts";
import {
  answerMachinesQuery,
  type CanaryHistogram,
  canaryHistogram,
  compareKey,
  goalRefs,
  type MachineReport,
  type MachinesPage,
} from "../../../protocol/machine-status.ts";
import { signingKeys } from "../artifacts/signing-key.ts";
import type { Env } from "../env.ts";
import { log } from "../log.ts";
import {
  applyGlobal,
  applySet,
  applyUndeploy,
  emptyGlobal,
  emptyRegional,
  type GlobalState,
  type RegionalState,
  type SetGoal,
  type SetResult,
  type UndeployResult,
} from "./core.ts";
import {
  type MachineView,
  parseRelayMessage,
  REPORT_STALE_MS,
  type RegionSummary,
  type RelayReport,
  reportFromList,
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
/** How long a relay has to answer a query about its machines; a silent one is left out. */
export const QUERY_TIMEOUT_MS = 2_000;

interface SocketTag {
  token: string;
  relay_id?: string;
}

/** What a listing of machines got: the page, and the relays that did not answer in time. */
export interface MachinesResult {
  machines: MachineView[];
  more: boolean;
  missing: string[];
}

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
  /** Queries sent to relays, by id, waiting for their answers (in memory: a query is short). */
  readonly #queries = new Map<number, (relayId: string, answer: unknown) => void>();
  #nextQuery = 1;

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

  async undeploy(app: string): Promise<UndeployResult> {
    const result = await this.ctx.blockConcurrencyWhile(async () => {
      const s = await this.#load();
      const applied = applyUndeploy(s.global ?? emptyGlobal(), app);
      if (applied.result.ok) {
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
    if (result.ok) await this.#pushPending();
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

  /**
   * A page of the region's machines, in (machine, app) order after `after`: asked of each live
   * relay that counts (a page from each, at most `limit`), read from the stored list of relays
   * that send theirs; never every machine of the region at once.
   */
  async machines(
    region: string,
    q: { app: string | null; state: string | null; after: [string, string] | null; limit: number },
  ): Promise<MachinesResult> {
    await this.#regional(region);
    const reports = [...(await this.ctx.storage.list<RelayReport>({ prefix: "relay:" })).values()];
    const now = Date.now();
    const query = {
      type: "machines_query" as const,
      app: q.app,
      state: q.state as MachineReport["state"] | null,
      after: q.after,
      limit: q.limit,
    };
    const pages = new Map<string, MachinesPage>();
    for (const r of reports.filter((x) => x.format === "list")) {
      const list = (await this.ctx.storage.get<MachineReport[]>(`relay-list:${r.relay_id}`)) ?? [];
      pages.set(r.relay_id, answerMachinesQuery(list, { ...query, id: 0 }));
    }
    const asked = reports.filter((r) => r.format === "summary" && now - r.at <= REPORT_STALE_MS);
    const answers = await this.#ask<MachinesPage>(
      (id) => ({ ...query, id }),
      asked.map((r) => r.relay_id),
    );
    for (const [relayId, page] of answers) pages.set(relayId, page);
    // Each (machine, app) once: from a relay it is connected to, else the freshest report.
    const best = new Map<string, { view: MachineView; rank: number }>();
    let more = false;
    for (const r of reports) {
      const page = pages.get(r.relay_id);
      if (!page) continue;
      more ||= page.more;
      const reachable = now - r.at <= REPORT_STALE_MS;
      for (const m of page.machines) {
        const rank = (reachable ? 2 : 0) + (m.connected === false ? 0 : 1);
        const key = `${m.machine_id}\n${m.app}`;
        const prior = best.get(key);
        if (prior && prior.rank >= rank) continue;
        const view = {
          ...m,
          relay_id: r.relay_id,
          reachable,
          reported_at: new Date(r.at).toISOString(),
        };
        best.set(key, { view, rank });
      }
    }
    const merged = [...best.values()]
      .map((b) => b.view)
      .sort((x, y) => compareKey(x, [y.machine_id, y.app]));
    return {
      machines: merged.slice(0, q.limit),
      more: more || merged.length > q.limit,
      missing: asked.map((r) => r.relay_id).filter((id) => !answers.has(id)),
    };
  }

  /**
   * How many of the region's connected machines fall in each canary bucket of a deployment
   * (summed over relays): how a canary of "3 machines" gets the percentage that picks three.
   */
  async canaryBuckets(
    region: string,
    deploymentId: number,
    app: string,
    labels: Record<string, string> | null,
  ): Promise<number[]> {
    await this.#regional(region);
    const reports = [...(await this.ctx.storage.list<RelayReport>({ prefix: "relay:" })).values()];
    const now = Date.now();
    const live = reports.filter((r) => now - r.at <= REPORT_STALE_MS);
    const total = new Array<number>(100).fill(0);
    const add = (counts: readonly number[]) => {
      for (const [b, n] of counts.entries()) total[b]! += n;
    };
    const query = { type: "canary_query" as const, app, deployment_id: deploymentId, labels };
    for (const r of live.filter((x) => x.format === "list")) {
      const list = (await this.ctx.storage.get<MachineReport[]>(`relay-list:${r.relay_id}`)) ?? [];
      const connected = new Map(
        list.filter((m) => m.connected !== false).map((m) => [m.machine_id, m] as const),
      );
      add(canaryHistogram(connected.values(), { ...query, id: 0 }).counts);
    }
    const answers = await this.#ask<CanaryHistogram>(
      (id) => ({ ...query, id }),
      live.filter((r) => r.format === "summary").map((r) => r.relay_id),
    );
    for (const h of answers.values()) add(h.counts);
    return total;
  }

  /** Sends a query to each of `relayIds`' sockets; the answers that came within the timeout. */
  async #ask<T>(build: (id: number) => object, relayIds: string[]): Promise<Map<string, T>> {
    const answers = new Map<string, T>();
    if (relayIds.length === 0) return answers;
    const id = this.#nextQuery++;
    const wanted = new Set(relayIds);
    const text = JSON.stringify(build(id));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, QUERY_TIMEOUT_MS);
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      this.#queries.set(id, (relayId, answer) => {
        if (!wanted.has(relayId) || answers.has(relayId)) return;
        answers.set(relayId, answer as T);
        if (answers.size === wanted.size) finish();
      });
      let sent = 0;
      for (const ws of this.ctx.getWebSockets()) {
        const tag = ws.deserializeAttachment() as SocketTag | null;
        if (!tag?.relay_id || !wanted.has(tag.relay_id)) continue;
        try {
          ws.send(text);
          sent++;
        } catch {
          // gone: its answer is missing
        }
      }
      if (sent === 0) finish();
    });
    this.#queries.delete(id);
    return answers;
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
    const tag: SocketTag = { token: request.headers.get("X-Fleetship-Relay-Token-Id") ?? "?" };
    server.serializeAttachment(tag);
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
    const tag = (ws.deserializeAttachment() as SocketTag | null) ?? { token: "?" };
    if (msg.type === "machines_page" || msg.type === "canary_histogram") {
      if (tag.relay_id) this.#queries.get(msg.id)?.(tag.relay_id, msg);
      return;
    }
    if (tag.relay_id !== msg.relay_id) ws.serializeAttachment({ ...tag, relay_id: msg.relay_id });
    const key = `relay:${msg.relay_id}`;
    const prior = await this.ctx.storage.get<RelayReport>(key);
    const now = Date.now();
    const url = msg.type === "hello" ? msg.url : (prior?.url ?? null);
    let report: RelayReport;
    if (msg.type === "status") {
      await this.ctx.storage.put(`relay-list:${msg.relay_id}`, msg.machines);
      await this.#aggregateLists(msg.relay_id, url, now);
      return;
    } else if (msg.type === "summary") {
      if (prior?.format === "list") await this.ctx.storage.delete(`relay-list:${msg.relay_id}`);
      if (msg.arrived?.length)
        this.#tellOthers(msg.relay_id, { type: "forget", machine_ids: msg.arrived });
      report = {
        relay_id: msg.relay_id,
        url,
        at: now,
        format: "summary",
        machines: msg.machines,
        apps: msg.apps,
        problems: msg.problems,
        problems_total: msg.problems_total,
        ...(msg.label_sets ? { label_sets: msg.label_sets } : {}),
        ...(msg.label_sets_other ? { label_sets_other: msg.label_sets_other } : {}),
      };
    } else {
      report = prior
        ? { ...prior, url, at: now }
        : {
            relay_id: msg.relay_id,
            url,
            at: now,
            format: "summary",
            machines: 0,
            apps: [],
            problems: [],
            problems_total: 0,
          };
    }
    await this.ctx.storage.put(key, report);
  }

  /**
   * Aggregates the stored lists of relays that send every machine (before step 12), each as a
   * relay would, leaving out a machine away from one relay while connected to another.
   */
  async #aggregateLists(fromRelay: string, url: string | null, now: number): Promise<void> {
    const lists = await this.ctx.storage.list<MachineReport[]>({ prefix: "relay-list:" });
    const connected = new Set<string>();
    for (const list of lists.values()) {
      for (const m of list) if (m.connected !== false) connected.add(m.machine_id);
    }
    const goals = goalRefs(Object.values((await this.#load()).regional?.apps ?? {}));
    for (const [key, list] of lists) {
      const relayId = key.slice("relay-list:".length);
      const prior =
        relayId === fromRelay
          ? { url, at: now }
          : await this.ctx.storage.get<RelayReport>(`relay:${relayId}`);
      if (!prior) continue;
      const here = list.filter((m) => m.connected !== false || !connected.has(m.machine_id));
      const report = reportFromList(relayId, prior.url, here, goals, prior.at);
      await this.ctx.storage.put(`relay:${relayId}`, report);
    }
  }

  /** Sends a message to every relay socket of the region but the sender's. */
  #tellOthers(senderRelayId: string, message: object): void {
    const text = JSON.stringify(message);
    for (const ws of this.ctx.getWebSockets()) {
      const tag = ws.deserializeAttachment() as SocketTag | null;
      if (!tag?.relay_id || tag.relay_id === senderRelayId) continue;
      try {
        ws.send(text);
      } catch {
        // gone: it forgets the machine at the end of its grace period
      }
    }
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
      ...(g.placement ? { placement: g.placement } : {}),
      ...(g.undeployed ? { undeployed: true as const } : {}),
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
