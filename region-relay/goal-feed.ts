/**
 * Keeps the relay's goals current (docs/goal-state.md): a WebSocket to the regional goal-state
 * instance (push: `{"type":"goal","version"}`; the signed goals are then fetched), reconnected
 * with jittered backoff; while it is down, long-polls `GET /v1/regions/:region/goal`. Up the
 * same socket go `hello` once per connection and the machines' status (at most every second,
 * and every 10 s as a heartbeat so the region never counts live machines unreachable), and the
 * answers to the control plane's queries about single machines (`machines_query`,
 * `canary_query`).
 */
import { Backoff, sleep } from "../protocol/backoff.ts";
import type { GoalStore } from "./goal-store.ts";
import { errorText, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { Upstream } from "./upstream.ts";

export interface GoalFeedOptions {
  upstream: Upstream;
  store: GoalStore;
  logger: Logger;
  metrics: Metrics;
  relayId: string;
  /** The WebSocket URL agents use, told to the control plane in `hello`. */
  agentUrl: string | null;
  /** The status message to send now (a summary, or the full list of relays before step 12). */
  status: () => Record<string, unknown>;
  /** The answer to a control plane's query about this relay's machines, or null if unknown. */
  answer: (query: unknown) => Record<string, unknown> | null;
  /** The control plane says these machines are another relay's now; false if malformed. */
  forget: (message: unknown) => boolean;
  /** Long-poll wait while the socket is down. Default 25 s. */
  pollWaitS?: number;
  /** Re-read goals this often even when nothing was pushed (re-signed documents). Default 5 min. */
  refreshMs?: number;
  /** Status heartbeat. Default 10 s. */
  heartbeatMs?: number;
  /** Fewest ms between two status messages. Default 1000. */
  statusMinIntervalMs?: number;
  backoff?: Backoff;
}

export class GoalFeed {
  readonly #o: GoalFeedOptions;
  #socket: WebSocket | null = null;
  #syncing: Promise<void> | null = null;
  #resync = false;
  #lastStatusAt = 0;
  #statusTimer: ReturnType<typeof setTimeout> | undefined;
  #socketChanged: (() => void) | null = null;

  constructor(options: GoalFeedOptions) {
    this.#o = options;
  }

  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const heartbeat = setInterval(() => this.#sendStatus(), this.#o.heartbeatMs ?? 10_000);
    try {
      await Promise.all([this.#socketLoop(signal), this.#pollLoop(signal)]);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(this.#statusTimer);
    }
  }

  /** Something in the machines' status changed: report it soon (throttled). */
  reportStatus(): void {
    if (this.#statusTimer !== undefined) return;
    const minMs = this.#o.statusMinIntervalMs ?? 1000;
    const wait = Math.max(0, this.#lastStatusAt + minMs - Date.now());
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      this.#sendStatus();
    }, wait);
  }

  #sendStatus(): void {
    const socket = this.#socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    this.#lastStatusAt = Date.now();
    const text = JSON.stringify({ ...this.#o.status(), relay_id: this.#o.relayId });
    const m = this.#o.metrics;
    m.set("relay_status_message_bytes", text.length);
    m.set(
      "relay_status_message_bytes_max",
      Math.max(text.length, m.get("relay_status_message_bytes_max")),
    );
    m.inc("relay_status_messages_total");
    m.inc("relay_status_bytes_total", text.length);
    socket.send(text);
  }

  async #socketLoop(signal: AbortSignal): Promise<void> {
    const backoff = this.#o.backoff ?? new Backoff({ baseMs: 500, maxMs: 15_000 });
    const { url, headers } = this.#o.upstream.subscription();
    while (!signal.aborted) {
      const outcome = await this.#holdSocket(url, headers, signal, () => backoff.reset());
      if (signal.aborted) break;
      const delay = backoff.next();
      this.#o.logger.log("warn", "upstream:disconnected", { ...outcome, retry_in_ms: delay });
      await sleep(delay, signal);
    }
  }

  /** One connection, from connect to close. */
  #holdSocket(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    onOpen: () => void,
  ): Promise<{ code: number; reason: string }> {
    return new Promise((resolve) => {
      let socket: WebSocket;
      try {
        socket = new WebSocket(url, { headers });
      } catch (err) {
        resolve({ code: 0, reason: errorText(err) });
        return;
      }
      const abort = () => socket.close(1000, "relay stopping");
      signal.addEventListener("abort", abort, { once: true });
      socket.onopen = () => {
        this.#socket = socket;
        onOpen();
        this.#o.metrics.set("relay_upstream_connected", 1);
        this.#o.logger.log("info", "upstream:connected", { url });
        socket.send(
          JSON.stringify({ type: "hello", relay_id: this.#o.relayId, url: this.#o.agentUrl }),
        );
        this.#sendStatus();
        this.#socketChanged?.();
      };
      socket.onmessage = (event) => this.#onUpstreamMessage(event.data);
      socket.onerror = () => {}; // a close event follows and says why
      socket.onclose = (event) => {
        signal.removeEventListener("abort", abort);
        if (this.#socket === socket) this.#socket = null;
        this.#o.metrics.set("relay_upstream_connected", 0);
        this.#socketChanged?.();
        resolve({ code: event.code, reason: event.reason || "closed" });
      };
    });
  }

  #onUpstreamMessage(data: unknown): void {
    let message: { type?: unknown; version?: unknown; message?: unknown };
    try {
      message = JSON.parse(String(data));
    } catch {
      this.#o.logger.log("warn", "upstream:message-invalid", { problem: "not JSON" });
      return;
    }
    if (message.type === "goal" && typeof message.version === "number") {
      if (message.version !== this.#o.store.current.version || !this.#o.store.known) {
        void this.#sync("push");
      }
    } else if (message.type === "error") {
      this.#o.logger.log("warn", "upstream:message-invalid", { problem: String(message.message) });
    } else if (message.type === "forget") {
      if (!this.#o.forget(message)) {
        this.#o.logger.log("warn", "upstream:message-invalid", { problem: "malformed forget" });
      }
    } else if (message.type === "machines_query" || message.type === "canary_query") {
      const answer = this.#o.answer(message);
      if (answer === null) {
        this.#o.logger.log("warn", "upstream:message-invalid", { problem: "malformed query" });
        return;
      }
      try {
        this.#socket?.send(JSON.stringify(answer));
      } catch {
        // the socket went away; the control plane times the query out
      }
    }
  }

  /** Fetches the signed goals now; concurrent calls share one fetch (and one more if asked meanwhile). */
  #sync(source: "push" | "refresh"): Promise<void> {
    if (this.#syncing) {
      this.#resync = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#resync = false;
        try {
          const next = await this.#o.upstream.regionGoals(this.#o.store.current.version, 0);
          await this.#apply(next, source);
        } catch (err) {
          this.#o.logger.log("warn", "upstream:error", {
            what: "goals",
            error: errorText(err),
            retry_in_ms: 0,
          });
        }
      } while (this.#resync);
    })().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  async #apply(
    next: { version: number; goals: readonly { document: string; signature: string }[] },
    source: "push" | "poll" | "refresh",
  ) {
    if (await this.#o.store.update({ version: next.version, goals: next.goals })) {
      this.#o.metrics.set("relay_goal_version", next.version);
      this.#o.logger.log("info", "goals:updated", {
        version: next.version,
        apps: next.goals.length,
        source,
      });
    }
  }

  /** Long-polls while the socket is down; re-reads every `refreshMs` while it is up. */
  async #pollLoop(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ baseMs: 1000, maxMs: 30_000 });
    const refreshMs = this.#o.refreshMs ?? 5 * 60_000;
    let lastRead = 0;
    while (!signal.aborted) {
      if (this.connected) {
        const wait = lastRead + refreshMs - Date.now();
        if (wait > 0) {
          await this.#waitSocketChange(wait, signal);
          continue;
        }
        lastRead = Date.now();
        await this.#sync("refresh");
        continue;
      }
      const poll = new AbortController();
      this.#socketChanged = () => poll.abort();
      const stop = () => poll.abort();
      signal.addEventListener("abort", stop, { once: true });
      try {
        const waitS = this.#o.store.known ? (this.#o.pollWaitS ?? 25) : 0;
        const next = await this.#o.upstream.regionGoals(
          this.#o.store.current.version,
          waitS,
          poll.signal,
        );
        lastRead = Date.now();
        backoff.reset();
        await this.#apply(next, "poll");
      } catch (err) {
        if (poll.signal.aborted) continue;
        const delay = backoff.next();
        this.#o.logger.log("warn", "upstream:error", {
          what: "goal poll",
          error: errorText(err),
          retry_in_ms: delay,
        });
        await sleep(delay, signal);
      } finally {
        signal.removeEventListener("abort", stop);
        this.#socketChanged = null;
      }
    }
  }

  #waitSocketChange(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#socketChanged = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#socketChanged = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
