// The fencing check after table 1: stale leases must be refused. Fake tokens on finished
// builds; then real leases made stale by the real reaper (leases expired in SQL, the cron
// handler run through wrangler's /__scheduled) and tried before and after a new worker
// re-claims. A control row sends the current lease, so a check that refuses everything fails.

import type { Client } from "@libsql/client";
import { seedQueue } from "./libsql.ts";
import { sleep } from "./processes.ts";
import { type ApiClaim, apiWorker, call, emptyManifest, type Stack } from "./stack.ts";
import { randomHex, table } from "./stats.ts";

const REAP_WITHIN_MS = 30_000;

interface Tally {
  tries: number;
  accepted: number;
  refused: number;
  other: number;
}

async function tally(requests: readonly (() => Promise<Response>)[]): Promise<Tally> {
  const t: Tally = { tries: 0, accepted: 0, refused: 0, other: 0 };
  for (const send of requests) {
    const r = await send();
    await r.body?.cancel();
    t.tries++;
    if (r.status === 200) t.accepted++;
    else if (r.status === 409) t.refused++;
    else t.other++;
  }
  return t;
}

export async function fencingTable(
  stack: Stack,
  admin: Client,
  opts: { succeeded: readonly ApiClaim[]; count: number },
): Promise<string> {
  const token = stack.tokens.builder;
  const complete = (c: ApiClaim, lease: string) => () =>
    call(stack, `/v1/worker/builds/${c.id}/complete`, {
      token,
      body: { lease_token: lease, manifest: emptyManifest(c) },
    });
  const heartbeat = (c: ApiClaim, lease: string) => () =>
    call(stack, `/v1/worker/builds/${c.id}/heartbeat`, { token, body: { lease_token: lease } });

  const fake = await tally(opts.succeeded.map((c) => complete(c, randomHex(16))));

  await seedQueue(admin, { queued: opts.count });
  const first = await claimAll(apiWorker(stack, "fence-first"), opts.count);
  // As if the first worker went silent for a whole lease; the reaper does the rest.
  await admin.execute("UPDATE builds SET lease_expires_at = 0 WHERE status = 'RUNNING'");
  const reaped = await fetch(`${stack.apiUrl}/__scheduled?cron=*+*+*+*+*`);
  await reaped.body?.cancel();
  await waitQueued(admin, opts.count);
  const whileQueued = await tally(first.map((c) => complete(c, c.token)));

  const second = await claimAll(apiWorker(stack, "fence-second"), opts.count);
  const reclaimedOk = second.filter((c, i) => c.id === first[i]?.id && c.attempt === 2).length;
  const afterReclaim = await tally(first.map((c) => complete(c, c.token)));
  const staleBeat = await tally(first.map((c) => heartbeat(c, c.token)));
  const current = await tally(second.map((c) => complete(c, c.token)));

  // A stale lease must get 409 every time: 200 would be a stale accept, anything else (404,
  // 400) would mean the check never reached the lease guard and proved nothing.
  const stale = (check: string, t: Tally) =>
    row(check, t, "409 every time", t.accepted === 0 && t.refused === t.tries && t.tries > 0);
  return table(
    ["fencing check (after the runs)", "tries", "200", "409", "other", "must", "verdict"],
    [
      stale("complete, random lease token, SUCCEEDED build", fake),
      stale("complete, expired lease, build requeued by reaper", whileQueued),
      stale(`complete, old lease, build re-claimed (${reclaimedOk} as attempt 2)`, afterReclaim),
      stale("heartbeat, old lease, build re-claimed", staleBeat),
      row(
        "control: complete, current lease",
        current,
        "200 every time",
        current.accepted === current.tries,
      ),
    ],
  );
}

function row(check: string, t: Tally, must: string, ok: boolean): string[] {
  const n = (x: number) => String(x);
  return [check, n(t.tries), n(t.accepted), n(t.refused), n(t.other), must, ok ? "ok" : "FAIL"];
}

async function claimAll(worker: ReturnType<typeof apiWorker>, count: number): Promise<ApiClaim[]> {
  const claims: ApiClaim[] = [];
  for (let i = 0; i < count; i++) {
    const c = await worker.claim();
    if (c === undefined)
      throw new Error(`fencing check: queue empty after ${i} of ${count} claims`);
    claims.push(c);
  }
  return claims;
}

async function waitQueued(admin: Client, count: number): Promise<void> {
  const deadline = Date.now() + REAP_WITHIN_MS;
  for (;;) {
    const rs = await admin.execute("SELECT count(*) AS n FROM builds WHERE status = 'QUEUED'");
    if (Number(rs.rows[0]?.n) === count) return;
    if (Date.now() > deadline) {
      throw new Error(
        `fencing check: the reaper did not requeue ${count} builds in ${REAP_WITHIN_MS} ms`,
      );
    }
    await sleep(100);
  }
}
