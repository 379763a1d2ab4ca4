/**
 * Enrollment (docs/goal-state.md): the region's enrollment secret is traded once for an agent
 * token bound to the region, kept in `<state>/token` (mode 0600); later starts read it from
 * there and never need the secret again. The control plane's public key is provisioned, or else
 * fetched once and kept beside it (trust on first use, with a warning).
 */
import { Backoff, sleep } from "../protocol/backoff.ts";
import { errorText, type Logger } from "./log.ts";

export class EnrollmentError extends Error {
  override readonly name = "EnrollmentError";
}

export interface EnrollOptions {
  stateDir: string;
  url: string | null;
  secret: string | null;
  region: string;
  machineId: string;
  logger: Logger;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

interface TokenFile {
  token: string;
  region: string;
  machine_id: string;
}

/** The agent token: from the state dir, or by enrolling (retried while the control plane is unreachable). */
export async function enrolledToken(o: EnrollOptions): Promise<string> {
  const path = `${o.stateDir}/token`;
  const saved = await readJson<TokenFile>(path);
  if (saved && saved.region === o.region && saved.machine_id === o.machineId) return saved.token;
  if (o.url === null || o.secret === null) {
    throw new EnrollmentError(
      "not enrolled: give --url and FLEETSHIP_ENROLLMENT_SECRET once (or FLEETSHIP_AGENT_TOKEN)",
    );
  }
  const doFetch = o.fetch ?? fetch;
  const backoff = new Backoff({ baseMs: 1000, maxMs: 30_000 });
  for (;;) {
    o.signal?.throwIfAborted();
    let response: Response;
    try {
      response = await doFetch(`${o.url}/v1/agents/enroll`, {
        method: "POST",
        headers: { Authorization: `Bearer ${o.secret}`, "Content-Type": "application/json" },
        body: JSON.stringify({ region: o.region, machine_id: o.machineId }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      const delay = backoff.next();
      o.logger.log("warn", "enroll:failed", { error: errorText(err), retry_in_ms: delay });
      await sleep(delay, o.signal);
      continue;
    }
    const text = await response.text();
    if (response.status === 201) {
      const body = JSON.parse(text) as TokenFile;
      await writePrivate(
        path,
        JSON.stringify({ token: body.token, region: o.region, machine_id: o.machineId }),
      );
      o.logger.log("info", "agent:enrolled", { region: o.region, machine_id: o.machineId });
      return body.token;
    }
    if (response.status < 500 && response.status !== 429) {
      throw new EnrollmentError(`enrollment refused (${response.status}): ${text.slice(0, 300)}`);
    }
    const delay = backoff.next();
    o.logger.log("warn", "enroll:failed", {
      error: `${response.status} ${text.slice(0, 200)}`,
      retry_in_ms: delay,
    });
    await sleep(delay, o.signal);
  }
}

/** The public key goals and manifests are verified with. */
export async function trustedPublicKey(o: {
  stateDir: string;
  provided: string | null;
  url: string | null;
  logger: Logger;
  fetch?: typeof fetch;
}): Promise<string> {
  if (o.provided !== null) return o.provided;
  const path = `${o.stateDir}/public-key`;
  const saved = await Deno.readTextFile(path).catch(() => null);
  if (saved) return saved.trim();
  if (o.url === null)
    throw new EnrollmentError("no public key: give --public-key (or --url to fetch it once)");
  const response = await (o.fetch ?? fetch)(`${o.url}/v1/signing-key`, {
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await response.json()) as { public_key?: unknown };
  if (!response.ok || typeof body.public_key !== "string") {
    throw new EnrollmentError(`GET /v1/signing-key: ${response.status}`);
  }
  await writePrivate(path, body.public_key);
  o.logger.log("warn", "key:fetched", {
    warning: "public key fetched over the network and kept; provision it with --public-key instead",
  });
  return body.public_key;
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return null;
  }
}

/** Writes a file only this user can read, atomically. */
async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.rename(tmp, path);
}
