/**
 * The agent's control channel: one WebSocket to one relay of its region (`GET /v1/agent` with
 * the agent token). It says `hello` with what it runs, takes `goals`, answers pings and sends
 * `status`. When the connection fails or closes it moves to the next relay in its list at
 * once; after a whole round of failures it waits (jittered backoff) before the next round.
 */

import { Backoff, sleep } from "../protocol/backoff.ts";
import {
  type AppStatus,
  decodeRelayMessage,
  encodeRelayMessage,
  type GoalsMessage,
  RELAY_PROTOCOL_VERSION,
} from "../protocol/relay-messages.ts";
import type { Logger } from "./log.ts";

export interface RelayLinkOptions {
  relays: readonly string[];
  token: string;
  machineId: string;
  region: string;
  /** Where peers reach this agent (step 7); null for now. */
  peerUrl: string | null;
  /** The machine's labels, said in hello (omitted when none, as agents before step 12). */
  labels?: Readonly<Record<string, string>>;
  apps: () => AppStatus[];
  onGoals: (message: GoalsMessage, relay: string) => void;
  /** Frames of kinds this agent does not know (step 7's mesh messages plug in here). */
  onUnknown?: (type: string, value: Readonly<Record<string, unknown>>) => void;
  logger: Logger;
  /** Default 15 s. */
  pingMs?: number;
  /** A connection silent this long is dropped. Default 45 s. */
  idleMs?: number;
  backoff?: Backoff;
}

export class RelayLink {
  readonly #o: RelayLinkOptions;
  #socket: WebSocket | null = null;
  #current: string | null = null;
  #nonce = 0;

  constructor(options: RelayLinkOptions) {
    this.#o = options;
  }

  /** The relay this agent is connected to (welcomed by), or null. */
  get current(): string | null {
    return this.#current;
  }

  /** Sends the full status now, if connected. */
  /** Sends a frame of a kind relay-messages.ts does not know (the mesh's `have`); false if not connected. */
  sendFrame(frame: string): boolean {
    const socket = this.#socket;
    if (this.#current === null || socket?.readyState !== WebSocket.OPEN) return false;
    socket.send(frame);
    return true;
  }

  sendStatus(): void {
    const socket = this.#socket;
    if (this.#current === null || socket?.readyState !== WebSocket.OPEN) return;
    socket.send(encodeRelayMessage({ type: "status", apps: this.#o.apps() }));
  }

  async run(signal: AbortSignal): Promise<void> {
    const backoff = this.#o.backoff ?? new Backoff({ baseMs: 500, maxMs: 15_000 });
    const relays = this.#o.relays;
    let failuresInRow = 0;
    for (let i = 0; !signal.aborted; i++) {
      const relay = relays[i % relays.length]!;
      const outcome = await this.#hold(relay, signal);
      if (signal.aborted) break;
      failuresInRow = outcome.welcomed ? 0 : failuresInRow + 1;
      if (outcome.welcomed && outcome.ms > 30_000) backoff.reset();
      // Straight on to the next relay; a pause only after every relay failed in a row.
      const delay =
        failuresInRow > 0 && failuresInRow % relays.length === 0
          ? backoff.next()
          : 100 + Math.round(Math.random() * 200);
      this.#o.logger.log("warn", "relay:disconnected", {
        relay,
        reason: outcome.reason,
        retry_in_ms: delay,
      });
      await sleep(delay, signal);
    }
  }

  #hold(
    relay: string,
    signal: AbortSignal,
  ): Promise<{ welcomed: boolean; ms: number; reason: string }> {
    const started = Date.now();
    return new Promise((resolve) => {
      let welcomed = false;
      let lastHeard = Date.now();
      let socket: WebSocket;
      try {
        socket = new WebSocket(`${relay.replace(/^http/, "ws")}/v1/agent`, {
          headers: { Authorization: `Bearer ${this.#o.token}` },
        });
      } catch (err) {
        resolve({ welcomed, ms: 0, reason: err instanceof Error ? err.message : String(err) });
        return;
      }
      this.#socket = socket;
      const close = (code: number, reason: string) => {
        try {
          socket.close(code, reason);
        } catch {
          // closing already
        }
      };
      const onAbort = () => close(1000, "agent stopping");
      signal.addEventListener("abort", onAbort, { once: true });
      const ticker = setInterval(() => {
        if (Date.now() - lastHeard > (this.#o.idleMs ?? 45_000)) return close(4008, "relay silent");
        if (socket.readyState === WebSocket.OPEN)
          socket.send(encodeRelayMessage({ type: "ping", nonce: ++this.#nonce }));
      }, this.#o.pingMs ?? 15_000);
      socket.onopen = () => {
        socket.send(
          encodeRelayMessage({
            type: "hello",
            protocol: RELAY_PROTOCOL_VERSION,
            machine_id: this.#o.machineId,
            region: this.#o.region,
            peer_url: this.#o.peerUrl,
            apps: this.#o.apps(),
            ...(this.#o.labels && Object.keys(this.#o.labels).length > 0
              ? { labels: { ...this.#o.labels } }
              : {}),
          }),
        );
      };
      socket.onmessage = (event) => {
        lastHeard = Date.now();
        const decoded = decodeRelayMessage(
          event.data instanceof ArrayBuffer ? event.data : String(event.data),
          "relay",
        );
        if (decoded.kind === "invalid") {
          this.#o.logger.log("warn", "relay:message-invalid", {
            relay,
            problems: decoded.problems,
          });
          return;
        }
        if (decoded.kind === "unknown") {
          this.#o.logger.log("debug", "relay:message-unknown", { relay, type: decoded.type });
          this.#o.onUnknown?.(decoded.type, decoded.value);
          return;
        }
        const m = decoded.message;
        if (m.type === "welcome") {
          if (m.region !== this.#o.region) return close(4003, "relay of another region");
          welcomed = true;
          this.#current = relay;
          this.#o.logger.log("info", "relay:connected", { relay, relay_id: m.relay_id });
        } else if (m.type === "goals") {
          if (welcomed) this.#o.onGoals(m, relay);
        } else if (m.type === "ping") {
          socket.send(encodeRelayMessage({ type: "pong", nonce: m.nonce }));
        } else if (m.type === "error") {
          this.#o.logger.log("warn", "relay:message-invalid", {
            relay,
            problems: [`${m.code}: ${m.message}`],
          });
        }
      };
      socket.onerror = () => {};
      socket.onclose = (event) => {
        clearInterval(ticker);
        signal.removeEventListener("abort", onAbort);
        if (this.#socket === socket) {
          this.#socket = null;
          this.#current = null;
        }
        resolve({
          welcomed,
          ms: Date.now() - started,
          reason: `closed ${event.code} ${event.reason}`.trim(),
        });
      };
    });
  }
}
