/**
 * The agents' WebSockets (already authenticated by the HTTP layer). Per connection: the agent
 * says `hello` (machine id, region, what it runs), the relay answers `welcome` and the region's
 * signed goals verbatim, then forwards every goal change; `status` frames update the machine
 * registry. A second connection for one machine replaces the first. Frames that fail to decode
 * are logged and dropped; unknown kinds (step 7's mesh messages, newer agents) are passed to
 * `onUnknown`, never fatal.
 */
import {
  decodeRelayMessage,
  encodeRelayMessage,
  type HelloMessage,
  RELAY_PROTOCOL_VERSION,
  type RelayToAgentMessage,
} from "../protocol/relay-messages.ts";
import type { GoalSnapshot, GoalStore } from "./goal-store.ts";
import type { Logger } from "./log.ts";
import type { MachineRegistry } from "./machine-registry.ts";
import type { Metrics } from "./metrics.ts";

export interface AgentHubOptions {
  relayId: string;
  region: string;
  registry: MachineRegistry;
  goals: GoalStore;
  logger: Logger;
  metrics: Metrics;
  /** A connection that has not said hello within this is closed. Default 10 s. */
  helloTimeoutMs?: number;
  /** A connection silent this long is closed (agents ping every 15 s). Default 45 s. */
  idleTimeoutMs?: number;
  /** Frames of kinds this relay does not know (step 7 plugs the tracker in here). */
  onUnknown?: (machineId: string, type: string, value: Readonly<Record<string, unknown>>) => void;
  /** A machine's connection ended (not when a newer connection replaced it). */
  onDisconnect?: (machineId: string) => void;
}

interface Session {
  socket: WebSocket;
  remote: string;
  machineId: string | null;
  lastSeen: number;
}

export class AgentHub {
  readonly #o: AgentHubOptions;
  readonly #sessions = new Set<Session>();
  readonly #byMachine = new Map<string, Session>();
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(options: AgentHubOptions) {
    this.#o = options;
    options.metrics.gauge("relay_agents_connected", () => this.#byMachine.size);
    options.goals.onChange((snapshot) => this.#broadcast(snapshot));
    this.#sweeper = setInterval(() => this.#sweep(), 5_000);
  }

  /** Connections held now, said hello or not. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Takes over an upgraded socket. */
  accept(socket: WebSocket, remote: string): void {
    const session: Session = { socket, remote, machineId: null, lastSeen: Date.now() };
    this.#sessions.add(session);
    socket.onmessage = (event) => this.#onFrame(session, event.data);
    socket.onclose = (event) => this.#onClose(session, event.code);
    socket.onerror = () => {};
  }

  /** Closes every connection (relay shutting down: agents fail over). */
  close(): void {
    clearInterval(this.#sweeper);
    for (const s of this.#sessions) this.#closeSocket(s, 1000, "relay stopping");
  }

  /**
   * Sends a frame of a kind `protocol/relay-messages.ts` does not know (the tracker's `peers`)
   * to a connected machine; false when it is not connected here.
   */
  sendRaw(machineId: string, frame: string): boolean {
    const session = this.#byMachine.get(machineId);
    if (!session || session.socket.readyState !== WebSocket.OPEN) return false;
    session.socket.send(frame);
    return true;
  }

  #onFrame(session: Session, data: unknown): void {
    session.lastSeen = Date.now();
    const frame = typeof data === "string" || data instanceof ArrayBuffer ? data : String(data);
    const decoded = decodeRelayMessage(frame, "agent");
    if (decoded.kind === "invalid") {
      this.#o.logger.log("warn", "agent:message-invalid", {
        machine_id: session.machineId,
        problems: decoded.problems,
      });
      if (session.machineId === null)
        this.#refuse(session, "bad_hello", decoded.problems.join("; "));
      return;
    }
    if (decoded.kind === "unknown") {
      if (session.machineId === null) {
        this.#refuse(session, "bad_hello", "expected hello");
        return;
      }
      this.#o.logger.log("debug", "agent:message-unknown", {
        machine_id: session.machineId,
        type: decoded.type,
      });
      this.#o.onUnknown?.(session.machineId, decoded.type, decoded.value);
      return;
    }
    const message = decoded.message;
    if (session.machineId === null) {
      if (message.type === "hello") this.#hello(session, message);
      else this.#refuse(session, "bad_hello", "expected hello");
      return;
    }
    switch (message.type) {
      case "status": {
        const prior = this.#o.registry.get(session.machineId)?.apps ?? [];
        this.#o.registry.status(session.machineId, message.apps);
        for (const a of message.apps) {
          const before = prior.find((p) => p.app === a.app);
          if (before?.state === a.state && before.build_id === a.build_id) continue; // progress only
          this.#o.logger.log("info", "agent:status", {
            machine_id: session.machineId,
            app: a.app,
            state: a.state,
            build_id: a.build_id,
            detail: a.detail,
          });
        }
        return;
      }
      case "ping":
        this.#send(session, { type: "pong", nonce: message.nonce });
        return;
      case "hello":
        this.#o.logger.log("warn", "agent:message-invalid", {
          machine_id: session.machineId,
          problems: ["a second hello"],
        });
        return;
      default:
        return; // pong, error: nothing to do
    }
  }

  #hello(session: Session, hello: HelloMessage): void {
    if (hello.region !== this.#o.region) {
      this.#refuse(
        session,
        "wrong_region",
        `this relay serves ${this.#o.region}, not ${hello.region}`,
      );
      return;
    }
    if (hello.protocol !== RELAY_PROTOCOL_VERSION) {
      this.#refuse(session, "protocol", `this relay speaks protocol ${RELAY_PROTOCOL_VERSION}`);
      return;
    }
    const prior = this.#byMachine.get(hello.machine_id);
    if (prior && prior !== session) {
      this.#byMachine.delete(hello.machine_id);
      prior.machineId = null; // its close must not mark the machine disconnected
      this.#closeSocket(prior, 4000, "replaced by a newer connection");
    }
    session.machineId = hello.machine_id;
    this.#byMachine.set(hello.machine_id, session);
    this.#o.registry.hello(hello.machine_id, hello.apps, hello.peer_url, hello.labels);
    this.#o.logger.log("info", "agent:connected", {
      machine_id: hello.machine_id,
      remote: session.remote,
    });
    this.#send(session, {
      type: "welcome",
      protocol: RELAY_PROTOCOL_VERSION,
      relay_id: this.#o.relayId,
      region: this.#o.region,
    });
    if (this.#o.goals.known) this.#sendGoals(session, this.#o.goals.current);
  }

  /** One goal change to every agent: encoded (and validated) once, the same frame to each. */
  #broadcast(snapshot: GoalSnapshot): void {
    const frame = this.#encode(null, goalsMessage(snapshot));
    if (frame === null) return;
    for (const session of this.#byMachine.values()) this.#sendGoals(session, snapshot, frame);
  }

  #sendGoals(session: Session, snapshot: GoalSnapshot, frame?: string): void {
    const text = frame ?? this.#encode(session, goalsMessage(snapshot));
    if (text === null) return;
    this.#sendText(session, text, "goals");
    this.#o.metrics.inc("relay_goal_pushes_total");
  }

  #send(session: Session, message: RelayToAgentMessage): void {
    const text = this.#encode(session, message);
    if (text !== null) this.#sendText(session, text, message.type);
  }

  /** The frame of `message`, or null (logged) when it is not a valid one. */
  #encode(session: Session | null, message: RelayToAgentMessage): string | null {
    try {
      return encodeRelayMessage(message);
    } catch (err) {
      this.#o.logger.log("warn", "agent:message-invalid", {
        machine_id: session?.machineId ?? null,
        problems: [`could not send ${message.type}: ${err instanceof Error ? err.message : err}`],
      });
      return null;
    }
  }

  #sendText(session: Session, text: string, type: string): void {
    if (session.socket.readyState !== WebSocket.OPEN) return;
    try {
      session.socket.send(text);
    } catch (err) {
      this.#o.logger.log("warn", "agent:message-invalid", {
        machine_id: session.machineId,
        problems: [`could not send ${type}: ${err instanceof Error ? err.message : err}`],
      });
    }
  }

  #refuse(session: Session, code: string, message: string): void {
    this.#o.metrics.inc("relay_agents_refused_total");
    this.#o.logger.log("warn", "agent:refused", {
      reason: `${code}: ${message}`,
      remote: session.remote,
    });
    this.#send(session, { type: "error", code, message: message.slice(0, 1000) });
    this.#closeSocket(session, 4003, code);
  }

  #onClose(session: Session, code: number): void {
    this.#sessions.delete(session);
    const id = session.machineId;
    if (id !== null && this.#byMachine.get(id) === session) {
      this.#byMachine.delete(id);
      this.#o.registry.disconnected(id);
      this.#o.onDisconnect?.(id);
    }
    this.#o.logger.log("info", "agent:disconnected", { machine_id: id, code });
  }

  #sweep(): void {
    const now = Date.now();
    const hello = this.#o.helloTimeoutMs ?? 10_000;
    const idle = this.#o.idleTimeoutMs ?? 45_000;
    for (const s of this.#sessions) {
      const limit = s.machineId === null ? hello : idle;
      if (now - s.lastSeen > limit) this.#closeSocket(s, 4008, "timed out");
    }
    this.#o.registry.prune();
  }

  #closeSocket(session: Session, code: number, reason: string): void {
    try {
      session.socket.close(code, reason);
    } catch {
      // already closing
    }
  }
}

function goalsMessage(snapshot: GoalSnapshot): RelayToAgentMessage {
  return { type: "goals", version: snapshot.version, goals: [...snapshot.goals] };
}
