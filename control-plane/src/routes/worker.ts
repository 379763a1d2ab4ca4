import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app-env.ts";
import { acceptArtifact, submittedManifestDigest } from "../artifacts/accept.ts";
import { actorOf } from "../audit.ts";
import { requireRole } from "../auth/tokens.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";
import { appendLogs } from "../queue/append-logs.ts";
import { buildView } from "../queue/build-view.ts";
import { claim } from "../queue/claim.ts";
import { complete } from "../queue/complete.ts";
import { fail } from "../queue/fail.ts";
import { heartbeat } from "../queue/heartbeat.ts";
import { leaseRefusal, refusalFor } from "../queue/lease.ts";
import { startReplication } from "../replication/start.ts";
import { Build } from "./builds.ts";
import { errors, IdParam, json, jsonBody, LeaseToken, security } from "./schemas.ts";

const WorkerId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,128}$/, "must be 1-128 of A-Z a-z 0-9 . _ : -");

const Claim = z.strictObject({
  worker_id: WorkerId,
  wait_s: z.number().int().min(0).max(30).optional(),
});

const Claimed = z
  .object({
    build: Build,
    app: z.object({
      name: z.string(),
      repo_url: z.string(),
      build_command: z.string(),
      artifact_path: z.string(),
    }),
    lease_token: z.string(),
    lease_expires_at: z.string(),
    heartbeat_interval_ms: z.number(),
  })
  .openapi("Claimed");

const claimRoute = createRoute({
  method: "post",
  path: "/v1/worker/claim",
  summary: "Claim the oldest queued build (long-polls up to wait_s); 204 when none",
  tags: ["worker"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { body: jsonBody(Claim) },
  responses: {
    200: json(Claimed, "a build to run, with its lease"),
    204: { description: "nothing queued" },
    ...errors(400, 401, 403),
  },
});

const Lease = z.strictObject({ lease_token: LeaseToken });

const heartbeatRoute = createRoute({
  method: "post",
  path: "/v1/worker/builds/{id}/heartbeat",
  summary: "Extend the lease; 409 when the lease is lost or the build canceled (stop at once)",
  tags: ["worker"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { params: IdParam, body: jsonBody(Lease) },
  responses: {
    200: json(z.object({ lease_expires_at: z.string() }), "extended"),
    ...errors(400, 401, 403, 404, 409),
  },
});

const Logs = z.strictObject({
  lease_token: LeaseToken,
  seq: z.number().int().min(0).max(1e12),
  lines: z.array(z.string().max(16_384)).min(1).max(1000),
});

const logsRoute = createRoute({
  method: "post",
  path: "/v1/worker/builds/{id}/logs",
  summary: "Append numbered log lines (idempotent per seq)",
  tags: ["worker"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { params: IdParam, body: jsonBody(Logs) },
  responses: {
    200: json(z.object({ appended: z.boolean() }), "stored (false: that seq was already stored)"),
    ...errors(400, 401, 403, 404, 409, 413),
  },
});

const Complete = z.strictObject({
  lease_token: LeaseToken,
  manifest: z.record(z.string(), z.unknown()),
});

const completeRoute = createRoute({
  method: "post",
  path: "/v1/worker/builds/{id}/complete",
  summary: "Submit the artifact's manifest; the build SUCCEEDS once every chunk is stored",
  tags: ["worker"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { params: IdParam, body: jsonBody(Complete) },
  responses: { 200: json(Build, "SUCCEEDED"), ...errors(400, 401, 403, 404, 409, 413, 422) },
});

const Fail = z.strictObject({
  lease_token: LeaseToken,
  reason: z.enum(["build_error", "timeout", "invalid_artifact", "infrastructure"]),
  message: z.string().min(1).max(4096),
});

const failRoute = createRoute({
  method: "post",
  path: "/v1/worker/builds/{id}/fail",
  summary: "End the attempt: build failures are final, infrastructure failures are retried",
  tags: ["worker"],
  security,
  middleware: [requireRole("builder")] as const,
  request: { params: IdParam, body: jsonBody(Fail) },
  responses: { 200: json(Build, "recorded"), ...errors(400, 401, 403, 404, 409) },
});

const iso = (ms: number) => new Date(ms).toISOString();

export function registerWorker(app: App): void {
  app.openapi(claimRoute, async (c) => {
    const body = c.req.valid("json");
    const db = c.get("db");
    const { leaseMs } = c.get("config");
    const actor = actorOf(c);
    const deadline = Date.now() + (body.wait_s ?? 0) * 1000;
    let delay = 100;
    for (;;) {
      const claimed = await claim(db, actor, { workerId: body.worker_id, leaseMs });
      if (claimed) {
        const { build, app: a } = claimed;
        return c.json(
          {
            build: buildView(build),
            app: {
              name: build.app,
              repo_url: a?.repoUrl ?? "",
              build_command: a?.buildCommand ?? "",
              artifact_path: a?.artifactPath ?? "",
            },
            lease_token: build.leaseToken!,
            lease_expires_at: iso(build.leaseExpiresAt!),
            heartbeat_interval_ms: Math.floor(leaseMs / 4),
          },
          200,
        );
      }
      const left = deadline - Date.now();
      // A worker that hung up must not be handed a build nobody will run (it would sit until its
      // lease expired): stop polling once the request is gone.
      if (left <= 0 || c.req.raw.signal.aborted) return c.body(null, 204);
      // Long-poll by re-trying the claim: cheap (one indexed statement) and needs no wake-up channel.
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      delay = Math.min(delay * 2, 1000);
    }
  });

  app.openapi(heartbeatRoute, async (c) => {
    const { id } = c.req.valid("param");
    const { lease_token } = c.req.valid("json");
    const r = await heartbeat(c.get("db"), {
      id,
      leaseToken: lease_token,
      leaseMs: c.get("config").leaseMs,
    });
    return c.json({ lease_expires_at: iso(r.leaseExpiresAt) }, 200);
  });

  app.openapi(logsRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const r = await appendLogs(c.get("db"), {
      id,
      leaseToken: body.lease_token,
      seq: body.seq,
      lines: body.lines,
    });
    return c.json(r, 200);
  });

  app.openapi(completeRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const db = c.get("db");
    const build = await db.query.builds.findFirst({ where: (b, { eq }) => eq(b.id, id) });
    if (!build || build.leaseToken !== body.lease_token)
      throw await leaseRefusal(db, id, body.lease_token);
    // Fencing comes before any write: a completion for a build that is no longer running
    // (canceled, timed out, requeued) must not sign or store anything, and a repeat after
    // success must not replace the manifest that was signed.
    if (build.status === "SUCCEEDED") {
      if ((await submittedManifestDigest(body.manifest)) === build.manifestDigest) {
        return c.json(buildView(build), 200);
      }
      throw new ApiError(
        409,
        "already_completed",
        `build ${id} already SUCCEEDED with manifest ${build.manifestDigest}; a different manifest cannot replace it`,
        { status: build.status, manifest_digest: build.manifestDigest },
      );
    }
    if (build.status !== "RUNNING") throw refusalFor(build, body.lease_token);
    const { manifest, ...artifact } = await acceptArtifact(c, build, body.manifest);
    const done = await complete(db, actorOf(c), { id, leaseToken: body.lease_token, ...artifact });
    try {
      await startReplication(c.env, db, c.get("config"), manifest);
    } catch (err) {
      // The build is SUCCEEDED either way; the QueueTicker and cron plan it on their next pass.
      log.error("replication:start-failed", {
        build_id: id,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    return c.json(buildView(done), 200);
  });

  app.openapi(failRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const done = await fail(c.get("db"), actorOf(c), {
      id,
      leaseToken: body.lease_token,
      reason: body.reason,
      message: body.message,
    });
    return c.json(buildView(done), 200);
  });
}
