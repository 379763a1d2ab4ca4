/**
 * The tracker's side of the agent WebSocket: a `have` report updates the tracker and is
 * answered with a `peers` message for that build (agents report twice a second while
 * downloading), listing fresh peers unless the report said `want_peers: false`. Malformed reports are counted and
 * dropped. A `peer_bad` report (an agent got wrong bytes from a peer) makes the tracker stop
 * handing that peer out.
 */
import { parseHave } from "../protocol/peer-tracker.ts";
import type { Metrics } from "./metrics.ts";
import type { Tracker } from "./tracker.ts";

export interface MeshHandlerOptions {
  tracker: Tracker;
  metrics: Metrics;
  send: (machineId: string, frame: string) => boolean;
}

export function meshHandler(o: MeshHandlerOptions): {
  onUnknown: (machineId: string, type: string, value: Readonly<Record<string, unknown>>) => void;
} {
  return {
    onUnknown(machineId, type, value) {
      if (type === "peer_bad") {
        const accused = value.machine_id;
        if (typeof accused !== "string" || accused === machineId) return;
        o.metrics.inc("relay_peer_bad_reports_total");
        o.tracker.distrust(accused);
        return;
      }
      if (type !== "have") return;
      const have = parseHave(value);
      if (!have) {
        o.metrics.inc("relay_have_invalid_total");
        return;
      }
      o.metrics.inc("relay_have_reports_total");
      o.tracker.report(machineId, have);
      const peers = o.tracker.peersFor(machineId, have.buildId, { peers: have.wantPeers });
      if (o.send(machineId, JSON.stringify(peers))) o.metrics.inc("relay_peer_lists_sent_total");
    },
  };
}
