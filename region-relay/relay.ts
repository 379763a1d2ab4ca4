/**
 * Puts the relay's parts together and serves. main.ts calls this with the parsed configuration,
 * the Deno KV database and the logger; tests call it with a fake control plane's URL, so they
 * run the same wiring the program does.
 */
import {
  aggregateMachines,
  answerMachinesQuery,
  canaryHistogram,
  canaryQuerySchema,
  forgetMessageSchema,
  type GoalRef,
  goalRefs,
  labelSets,
  MAX_ARRIVED,
  machinesQuerySchema,
} from "../protocol/machine-status.ts";
import { Verifier } from "../protocol/signing.ts";
import { AgentAuth, kvKnownTokens } from "./agent-auth.ts";
import { AgentHub } from "./agent-hub.ts";
import { ChunkCache, kvCacheIndex } from "./chunk-cache.ts";
import type { Config } from "./config.ts";
import { GoalFeed } from "./goal-feed.ts";
import { diskSnapshotFile, type GoalSnapshot, GoalStore } from "./goal-store.ts";
import { relayHandler } from "./http.ts";
import type { Logger } from "./log.ts";
import { kvMachineStore, MachineRegistry } from "./machine-registry.ts";
import { ManifestCache } from "./manifest-cache.ts";
import { meshHandler } from "./mesh-handler.ts";
import { Metrics } from "./metrics.ts";
import { Tracker } from "./tracker.ts";
import { type Upstream, UpstreamError } from "./upstream.ts";

export interface RelayDeps {
  logger: Logger;
  kv: Deno.Kv;
  upstream: Upstream;
  /** The control plane's public key (base64). */
  publicKey: string;
}

export interface RunningRelay {
  port: number;
  publicUrl: string;
  metrics: Metrics;
  /** Resolves when stopped. */
  finished: Promise<void>;
  /** Closes agent sockets, the subscription and the listener. */
  stop(): Promise<void>;
}

export async function startRelay(config: Config, deps: RelayDeps): Promise<RunningRelay> {
  const { logger, kv, upstream } = deps;
  const stop = new AbortController();
  const metrics = new Metrics();
  const verifier = await Verifier.fromPublicKeys(deps.publicKey);
  const statusOf = (err: unknown) => (err instanceof UpstreamError ? err.status : null);

  await Deno.mkdir(config.cacheDir, { recursive: true });
  const chunks = new ChunkCache({
    dir: config.cacheDir,
    maxBytes: config.cacheMaxBytes,
    index: kvCacheIndex(kv),
    fetchChunk: (digest, signal) => upstream.chunk(digest, signal),
    isNotFound: (err) => statusOf(err) === 404,
    logger,
    metrics,
    concurrency: config.upstreamConcurrency,
  });
  await chunks.load();
  const manifests = new ManifestCache({
    dir: `${config.cacheDir}/manifests`,
    verifier,
    fetchManifest: (id) => upstream.manifest(id),
    statusOf,
    logger,
  });
  await manifests.init();

  const goals = new GoalStore(diskSnapshotFile(`${config.cacheDir}/goals.json`));
  if (await goals.load()) {
    metrics.set("relay_goal_version", goals.current.version);
    logger.log("info", "goals:updated", {
      version: goals.current.version,
      apps: goals.current.goals.length,
      source: "disk",
    });
  }

  let feed: GoalFeed | null = null;
  const registry = new MachineRegistry({
    store: kvMachineStore(kv),
    onChange: () => feed?.reportStatus(),
  });
  await registry.load();
  const auth = new AgentAuth({
    check: (token) => upstream.checkAgentToken(token),
    known: kvKnownTokens(kv),
    logger,
    ttlMs: config.tokenTtlMs,
  });
  const tracker = new Tracker({ peerUrl: (id) => registry.get(id)?.peerUrl ?? null });
  const mesh = meshHandler({ tracker, metrics, send: (id, frame) => hub.sendRaw(id, frame) });
  const hub: AgentHub = new AgentHub({
    relayId: config.relayId,
    region: config.region,
    registry,
    goals,
    logger,
    metrics,
    onUnknown: mesh.onUnknown,
    onDisconnect: (id) => tracker.forget(id),
  });

  const server = Deno.serve(
    { hostname: config.hostname, port: config.port, signal: stop.signal, onListen: () => {} },
    relayHandler({
      relayId: config.relayId,
      region: config.region,
      auth,
      hub,
      chunks,
      manifests,
      metrics,
      logger,
      maxAgents: config.maxAgents,
      fallbackSlots: config.fallbackSlots,
      health: () => ({
        upstream_connected: feed?.connected ?? false,
        goal_version: goals.current.version,
      }),
    }),
  );
  const port = server.addr.port;
  const host = config.hostname === "0.0.0.0" ? Deno.hostname() : config.hostname;
  const publicUrl = config.publicUrl ?? `http://${host}:${port}`;
  feed = new GoalFeed({
    upstream,
    store: goals,
    logger,
    metrics,
    relayId: config.relayId,
    // docs/goal-state.md: `hello` names the WebSocket URL agents use.
    agentUrl: `${publicUrl.replace(/^http/, "ws")}/v1/agent`,
    status: () => statusMessage(config.statusFormat, registry, goalRefsOf(goals.current)),
    answer: (query) => answerQuery(query, registry),
    forget: (message) => {
      const m = forgetMessageSchema.safeParse(message);
      if (!m.success) return false;
      const n = registry.forget(m.data.machine_ids);
      if (n > 0) logger.log("info", "machines:moved", { forgotten: n });
      return true;
    },
  });
  const feeding = feed.run(stop.signal);
  const finished = Promise.all([feeding, server.finished]).then(() => {});
  return {
    port,
    publicUrl,
    metrics,
    finished,
    async stop() {
      hub.close();
      stop.abort();
      await finished;
    },
  };
}

/**
 * What goes up: per-app counts and a sample of problem machines (docs/goal-state.md), or, with
 * `--status-format list`, every machine as relays before step 12 sent it (the bench's baseline,
 * and what an older control plane understands).
 */
function statusMessage(
  format: Config["statusFormat"],
  registry: MachineRegistry,
  goals: ReadonlyMap<string, GoalRef>,
): Record<string, unknown> {
  const machines = registry.reports();
  if (format === "list") return { type: "status", machines };
  const arrived = registry.takeArrived(MAX_ARRIVED);
  return {
    type: "summary",
    machines: registry.size,
    ...aggregateMachines(machines, goals),
    ...(arrived.length > 0 ? { arrived } : {}),
    ...labelSets(registry.connected()),
  };
}

/** The control plane's questions about single machines, answered from the registry. */
function answerQuery(query: unknown, registry: MachineRegistry): Record<string, unknown> | null {
  const page = machinesQuerySchema.safeParse(query);
  if (page.success) return answerMachinesQuery(registry.reports(), page.data);
  const canary = canaryQuerySchema.safeParse(query);
  if (canary.success) return canaryHistogram(registry.connected(), canary.data);
  return null;
}

const refsCache = new WeakMap<GoalSnapshot, Map<string, GoalRef>>();

/** Canary membership needs each app's goal: read from the documents the relay passes on. */
function goalRefsOf(snapshot: GoalSnapshot): Map<string, GoalRef> {
  let refs = refsCache.get(snapshot);
  if (!refs) {
    const docs = [];
    for (const g of snapshot.goals) {
      try {
        docs.push(JSON.parse(g.document));
      } catch {
        // not ours to judge: agents verify; a document that is not JSON counts no canary
      }
    }
    refs = goalRefs(docs.filter((d) => typeof d?.app === "string"));
    refsCache.set(snapshot, refs);
  }
  return refs;
}
