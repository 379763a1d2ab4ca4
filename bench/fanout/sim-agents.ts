// Many simulated agents in one process (bench/fanout): each opens its own WebSocket to a relay
// of the region and speaks the agent's protocol (protocol/relay-messages.ts): hello with its
// labels, pings, and, when a goal for the bench's app arrives, a status saying it runs the
// build (healthy) if the goal places the app on it. A goal document is verified once per
// process (every real agent verifies its own copy on its own CPU). No download, no process:
// this measures the control path only.
//
//   deno run -A bench/fanout/sim-agents.ts   (configured by FANOUT_SIM, a JSON object)
//
// Prints {"event":"sim:progress",...} every second and {"event":"sim:done",...} once every
// agent holds the goal and reported, with each agent's arrival and report times (epoch ms).
import { type GoalDocument, verifyGoal } from "../../protocol/goal.ts";
import { placedOn } from "../../protocol/placement.ts";
import {
  decodeRelayMessage,
  encodeRelayMessage,
  RELAY_PROTOCOL_VERSION,
} from "../../protocol/relay-messages.ts";
import { Verifier } from "../../protocol/signing.ts";

interface SimConfig {
  relays: string[];
  token: string;
  region: string;
  app: string;
  publicKey: string;
  prefix: string;
  first: number;
  count: number;
  /** Agent first + i carries labels[(first + i) % labels.length]. */
  labels: Record<string, string>[];
  /** Connections opened at once while ramping up. */
  rampBatch: number;
}

const config = JSON.parse(Deno.env.get("FANOUT_SIM") ?? "{}") as SimConfig;
const verifier = await Verifier.fromPublicKeys(config.publicKey);
const verified = new Map<string, Promise<GoalDocument | null>>();
const arrivals = new Array<number>(config.count).fill(0);
const reports = new Array<number>(config.count).fill(0);
let connected = 0;
let arrived = 0;
let done = false;

function verifyOnce(document: string, signature: string): Promise<GoalDocument | null> {
  let v = verified.get(document);
  if (!v) {
    v = verifyGoal(
      verifier,
      { document, signature },
      { region: config.region, now: new Date() },
    ).then((r) => (r.ok ? r.goal : null));
    verified.set(document, v);
  }
  return v;
}

function connect(i: number): Promise<void> {
  const machineId = `${config.prefix}-${config.first + i}`;
  const labels = config.labels[(config.first + i) % config.labels.length] ?? {};
  const relay = config.relays[(config.first + i) % config.relays.length]!;
  return new Promise((resolve) => {
    const socket = new WebSocket(`${relay.replace(/^http/, "ws")}/v1/agent`, {
      headers: { Authorization: `Bearer ${config.token}` },
    });
    let opened = false;
    socket.onopen = () => {
      opened = true;
      connected++;
      socket.send(
        encodeRelayMessage({
          type: "hello",
          protocol: RELAY_PROTOCOL_VERSION,
          machine_id: machineId,
          region: config.region,
          peer_url: null,
          apps: [],
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
        }),
      );
      resolve();
    };
    socket.onerror = () => {
      if (!opened) resolve();
    };
    socket.onclose = (e) => {
      if (opened) connected--;
      else resolve();
      if (!done) console.error(`${machineId}: closed ${e.code} ${e.reason}`);
    };
    socket.onmessage = async (event) => {
      const d = decodeRelayMessage(String(event.data), "relay");
      if (d.kind !== "message" || d.message.type !== "goals" || arrivals[i]) return;
      const at = Date.now();
      for (const g of d.message.goals) {
        if (!g.document.includes(`"app":"${config.app}"`)) continue;
        const goal = await verifyOnce(g.document, g.signature);
        if (!goal || goal.app !== config.app || arrivals[i]) continue;
        arrivals[i] = at;
        arrived++;
        if (goal.undeployed || !placedOn(goal.placement, labels)) {
          reports[i] = -1; // not placed here: nothing to report, as a real agent
          continue;
        }
        socket.send(
          encodeRelayMessage({
            type: "status",
            apps: [
              {
                app: config.app,
                build_id: goal.build_id,
                generation: goal.generation,
                state: "healthy",
                detail: null,
                running_build_id: goal.build_id,
                progress: null,
              },
            ],
          }),
        );
        reports[i] = Date.now();
      }
    };
    setInterval(() => {
      if (socket.readyState === WebSocket.OPEN)
        socket.send(encodeRelayMessage({ type: "ping", nonce: 1 }));
    }, 15_000);
  });
}

const progress = setInterval(() => {
  console.log(JSON.stringify({ event: "sim:progress", connected, arrived, count: config.count }));
  if (!done && arrived === config.count) {
    done = true;
    console.log(
      JSON.stringify({
        event: "sim:done",
        arrivals,
        reports: reports.filter((r) => r > 0),
      }),
    );
  }
}, 1_000);

for (let i = 0; i < config.count; i += config.rampBatch) {
  const batch = [];
  for (let j = i; j < Math.min(config.count, i + config.rampBatch); j++) batch.push(connect(j));
  await Promise.all(batch);
}
console.log(JSON.stringify({ event: "sim:connected", connected, count: config.count }));
Deno.addSignalListener("SIGTERM", () => {
  done = true;
  clearInterval(progress);
  Deno.exit(0);
});
