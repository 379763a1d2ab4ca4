// Publishes one build of an app through the control plane's API, as a build worker would:
// queue, claim, upload the chunks (a few at a time), complete, wait until deployable.
import { manifestFromStream } from "../../protocol/artifact.ts";
import type { ChunkerParams } from "../../protocol/chunker-params.ts";
import { must, until } from "../../tests/support/relay-agent.ts";
import type { Stack } from "../../tests/support/stack.ts";

/** 1 MiB average chunks: a 256 MiB artifact is about 256 pieces. */
export const BENCH_CHUNKER: ChunkerParams = {
  algorithm: "fastcdc-2020",
  min_size: 256 * 1024,
  avg_size: 1024 * 1024,
  max_size: 4 * 1024 * 1024,
  normalization: 1,
};

let commits = 0;

export async function publish(
  stack: Stack,
  app: string,
  bytes: Uint8Array,
): Promise<{ buildId: number; chunks: number }> {
  const { deployer, builder } = stack.tokens;
  const commit = `${Date.now().toString(16)}${(++commits).toString(16)}`.padStart(40, "0");
  const queued = await must(stack, "POST", "/v1/builds", {
    token: deployer,
    body: { app, commit_sha: commit, force: true },
  });
  const claim = await must(stack, "POST", "/v1/worker/claim", {
    token: builder,
    body: { worker_id: "bench", wait_s: 5 },
  });
  if (claim.build.id !== queued.id) throw new Error(`claimed ${claim.build.id}, not ${queued.id}`);
  // A big artifact uploads for longer than one lease: keep it, as a build worker does. A beat
  // still in flight when the build completes is refused (lease_lost): not an error then.
  let uploaded = false;
  const beat = setInterval(() => {
    must(stack, "POST", `/v1/worker/builds/${queued.id}/heartbeat`, {
      token: builder,
      body: { lease_token: claim.lease_token },
    }).catch((err) => uploaded || console.error(`heartbeat: ${err}`));
  }, claim.heartbeat_interval_ms);
  try {
    return await upload(stack, app, bytes, commit, queued.id, claim.lease_token);
  } finally {
    uploaded = true;
    clearInterval(beat);
  }
}

async function upload(
  stack: Stack,
  app: string,
  bytes: Uint8Array,
  commit: string,
  buildId: number,
  leaseToken: string,
): Promise<{ buildId: number; chunks: number }> {
  const { deployer, builder } = stack.tokens;
  const inFlight = new Set<Promise<unknown>>();
  const manifest = await manifestFromStream(
    (async function* () {
      yield bytes;
    })(),
    { app, build_id: buildId, commit_sha: commit },
    {
      params: BENCH_CHUNKER,
      onChunk: (chunk) => {
        const p = must(stack, "PUT", `/v1/chunks/${chunk.digest}`, {
          token: builder,
          bytes: chunk.bytes,
        }).finally(() => inFlight.delete(p));
        inFlight.add(p);
      },
    },
  );
  await Promise.all(inFlight);
  await must(stack, "POST", `/v1/worker/builds/${buildId}/complete`, {
    token: builder,
    body: { lease_token: leaseToken, manifest },
  });
  await until(
    `build ${buildId} deployable`,
    async () => (await must(stack, "GET", `/v1/builds/${buildId}`, { token: deployer })).deployable,
    120_000,
  );
  return { buildId, chunks: manifest.chunks.length };
}
