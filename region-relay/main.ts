/**
 * The region relay (DESIGN sections 2, 7, 8): follows its region's goal state, pushes it to its
 * agents, serves them manifests and chunks (read once from the regional bucket, cached on
 * disk), and reports their status up. The one composition root: reads the configuration,
 * opens its state, starts the relay (relay.ts), serves until SIGTERM/SIGINT.
 *
 *   FLEETSHIP_RELAY_TOKEN=… deno task region-relay --url http://127.0.0.1:8787 --region us-east
 *
 * State (chunk cache index, known agents, known agent tokens) is in Deno KV under --cache-dir,
 * the goals and manifests in files beside it, so a restarted relay carries on where it was.
 */

import { Backoff, sleep } from "../protocol/backoff.ts";
import { usageError } from "../protocol/flags.ts";
import { ConfigError, parseConfig, USAGE } from "./config.ts";
import { errorText, jsonLogger } from "./log.ts";
import { startRelay } from "./relay.ts";
import { httpUpstream } from "./upstream.ts";

const logger = jsonLogger((line) => console.log(line));

let parsed: ReturnType<typeof parseConfig>;
try {
  parsed = parseConfig(Deno.args, Deno.env.toObject(), {
    hostname: Deno.hostname(),
    tmpdir: Deno.env.get("TMPDIR") || "/tmp",
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  logger.log("error", "config:invalid", { problems: err.problems });
  console.error(usageError("fleetship-relay", err.problems, USAGE));
  Deno.exit(2);
}
if (parsed === "help") {
  console.log(USAGE);
  Deno.exit(0);
}
const config = parsed;
const upstream = httpUpstream({ url: config.url, token: config.token, region: config.region });

// Without a provisioned key the relay cannot check manifests: it waits for the control plane.
let publicKey = config.publicKey;
for (const backoff = new Backoff({ baseMs: 1000, maxMs: 15_000 }); publicKey === null; ) {
  try {
    publicKey = await upstream.signingKey();
    logger.log("warn", "key:fetched", {
      warning:
        "public key fetched from the control plane over the network; provision it with --public-key",
    });
  } catch (err) {
    const delay = backoff.next();
    logger.log("warn", "upstream:error", {
      what: "signing key",
      error: errorText(err),
      retry_in_ms: delay,
    });
    await sleep(delay);
  }
}

await Deno.mkdir(config.cacheDir, { recursive: true });
const kv = await Deno.openKv(`${config.cacheDir}/relay.kv`);
const relay = await startRelay(config, { logger, kv, upstream, publicKey });
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => {
    logger.log("info", "relay:stopping", { signal });
    void relay.stop();
  });
}
logger.log("info", "relay:started", {
  relay_id: config.relayId,
  region: config.region,
  port: relay.port,
  url: relay.publicUrl,
  cache_dir: config.cacheDir,
  cache_max_bytes: config.cacheMaxBytes,
});
await relay.finished;
kv.close();
logger.log("info", "relay:stopped", {});
Deno.exit(0);
