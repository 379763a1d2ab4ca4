/**
 * A stand-in for the control plane's relay-facing side (docs/goal-state.md), for the relay's
 * tests: region goal long-poll, the subscription WebSocket, chunk and manifest reads, and token
 * checks. Not used by the program.
 */
import type { SignedGoal } from "../protocol/relay-messages.ts";

export const RELAY_TOKEN = "fst_relay_token_for_tests";
export const AGENT_TOKEN = "fst_agent_token_for_tests";

export class FakeControlPlane {
  version = 0;
  goals: SignedGoal[] = [];
  readonly chunks = new Map<string, Uint8Array>();
  readonly manifests = new Map<number, string>();
  /** Chunk reads served, per digest. */
  readonly chunkReads = new Map<string, number>();
  /** Everything relays sent up the subscription sockets, parsed. */
  readonly relayMessages: Record<string, unknown>[] = [];
  /** While true, subscription upgrades are refused (503): relays must fall back to polling. */
  refuseSubscribe = false;
  goalReads = 0;
  readonly #sockets = new Set<WebSocket>();
  readonly #waiters = new Set<() => void>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor(readonly region = "us-east") {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) =>
      this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  get subscribers(): number {
    return [...this.#sockets].filter((s) => s.readyState === WebSocket.OPEN).length;
  }

  /** A new region version with these goals: pushed to subscribers, wakes long-polls. */
  setGoals(goals: SignedGoal[]): void {
    this.version++;
    this.goals = goals;
    for (const wake of [...this.#waiters]) wake();
    const text = JSON.stringify({ type: "goal", version: this.version, apps: {} });
    for (const s of this.#sockets) if (s.readyState === WebSocket.OPEN) s.send(text);
  }

  /** Sends `message` down every open subscription (a query, as the regional instance asks). */
  sendToRelays(message: unknown): void {
    const text = JSON.stringify(message);
    for (const s of this.#sockets) if (s.readyState === WebSocket.OPEN) s.send(text);
  }

  /** Closes every subscription socket (as a control plane restart would). */
  dropSubscribers(): void {
    for (const s of this.#sockets) s.close(4012, "restarting");
  }

  async close(): Promise<void> {
    this.dropSubscribers();
    for (const wake of [...this.#waiters]) wake();
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const token = /^Bearer (\S+)$/.exec(req.headers.get("Authorization") ?? "")?.[1];
    const regionPath = `/v1/regions/${this.region}`;
    if (url.pathname === "/v1/signing-key") return Response.json({ public_key: "unused" });
    if (
      token !== RELAY_TOKEN &&
      !(token === AGENT_TOKEN && url.pathname === `${regionPath}/goal`)
    ) {
      return Response.json(
        { error: { code: "unauthorized", message: "bad token" } },
        { status: 401 },
      );
    }
    if (url.pathname === `${regionPath}/goal`) {
      this.goalReads++;
      const since = Number(url.searchParams.get("since") ?? 0);
      const waitS = Number(url.searchParams.get("wait_s") ?? 25);
      if (this.version <= since && waitS > 0) await this.#wait(waitS * 1000);
      return Response.json({ region: this.region, version: this.version, goals: this.goals });
    }
    if (url.pathname === `${regionPath}/subscribe`) {
      if (this.refuseSubscribe) return new Response("unavailable", { status: 503 });
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => {
        this.#sockets.add(socket);
        socket.send(JSON.stringify({ type: "goal", version: this.version, apps: {} }));
      };
      socket.onmessage = (e) => this.relayMessages.push(JSON.parse(String(e.data)));
      socket.onclose = () => this.#sockets.delete(socket);
      return response;
    }
    const chunk = new RegExp(`^${regionPath}/chunks/([0-9a-f]{64})$`).exec(url.pathname);
    if (chunk) {
      const bytes = this.chunks.get(chunk[1]!);
      if (!bytes)
        return Response.json(
          { error: { code: "not_found", message: "no chunk" } },
          { status: 404 },
        );
      this.chunkReads.set(chunk[1]!, (this.chunkReads.get(chunk[1]!) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 30)); // long enough for concurrent askers to pile up
      return new Response(bytes as Uint8Array<ArrayBuffer>);
    }
    const manifest = /^\/v1\/builds\/(\d+)\/manifest$/.exec(url.pathname);
    if (manifest) {
      const text = this.manifests.get(Number(manifest[1]));
      if (!text)
        return Response.json(
          { error: { code: "not_found", message: "no build" } },
          { status: 404 },
        );
      return new Response(text, { headers: { "Content-Type": "application/json" } });
    }
    return Response.json({ error: { code: "not_found", message: url.pathname } }, { status: 404 });
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }
}
