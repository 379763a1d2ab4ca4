/**
 * The agent's peer listener: `GET /v1/peer?machine=ID&ticket=T` upgrades to a WebSocket when
 * the mesh admits the ticket (an HMAC the relay issued under this agent's peer key for that
 * machine id, see protocol/peer-tracker.ts); anything else is refused. No agent token is
 * presented to a peer: the relay, which checked both agents' tokens, vouches for them.
 */
import type { Mesh } from "./mesh.ts";

export function servePeers(
  mesh: Mesh,
  o: { hostname: string; port: number; signal: AbortSignal },
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: o.hostname, port: o.port, signal: o.signal, onListen: () => {} },
    (request) => {
      const url = new URL(request.url);
      if (url.pathname !== "/v1/peer") return new Response("not found", { status: 404 });
      const machine = url.searchParams.get("machine") ?? "";
      const ticket = url.searchParams.get("ticket") ?? "";
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket upgrade", { status: 426 });
      }
      if (!mesh.admits(machine, ticket)) return new Response("not admitted", { status: 403 });
      const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 60 });
      mesh.accept(socket, machine);
      return response;
    },
  );
}
