import { swaggerUI } from "@hono/swagger-ui";
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./app-env.ts";
import { parseConfig } from "./config.ts";
import { registerDashboard } from "./dashboard/routes.tsx";
import { openDb } from "./db/client.ts";
import { ApiError, handleError } from "./errors.ts";
import { log, setLogLevel } from "./log.ts";
import { registerAgents } from "./routes/agents.ts";
import { registerApplications } from "./routes/applications.ts";
import { registerAudit } from "./routes/audit.ts";
import { registerBuilds } from "./routes/builds.ts";
import { registerChunks } from "./routes/chunks.ts";
import { registerDeployments } from "./routes/deployments.ts";
import { registerGoal } from "./routes/goal.ts";
import { registerHealth } from "./routes/health.ts";
import { registerManifests } from "./routes/manifests.ts";
import { registerMetrics } from "./routes/metrics.ts";
import { registerRegions } from "./routes/regions.ts";
import { registerTokens } from "./routes/tokens.ts";
import { registerWorker } from "./routes/worker.ts";
import { validationHook } from "./validation.ts";

/** Builds the Hono app; index.ts alone knows about Worker exports. Testable with app.request(). */
export function createApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(async (c, next) => {
    const config = parseConfig(c.env);
    setLogLevel(c.env.LOG_LEVEL);
    c.set("config", config);
    c.set("db", openDb(config));
    const started = performance.now();
    await next();
    log.info("request:done", {
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    });
  });
  app.onError(handleError);
  // A manifest of a 10 GB artifact is ~1 MB of JSON; everything else is small.
  const tooLarge = (max: number) => () => {
    throw new ApiError(413, "too_large", `request body over ${max} bytes`);
  };
  app.use(
    "/v1/worker/builds/:id/complete",
    bodyLimit({ maxSize: 8 << 20, onError: tooLarge(8 << 20) }),
  );
  app.use("/v1/*", async (c, next) => {
    // Chunk uploads stream to R2 and check their own Content-Length (routes/chunks.ts).
    if (c.req.path.endsWith("/complete") || c.req.method === "PUT") return next();
    return bodyLimit({ maxSize: 256 << 10, onError: tooLarge(256 << 10) })(c, next);
  });
  app.notFound((c) => {
    throw new ApiError(404, "not_found", `no route ${c.req.method} ${c.req.path}; see /docs`);
  });

  registerHealth(app);
  registerMetrics(app);
  registerApplications(app);
  registerBuilds(app);
  registerWorker(app);
  registerChunks(app);
  registerManifests(app);
  registerRegions(app);
  registerDeployments(app);
  registerGoal(app);
  registerAgents(app);
  registerTokens(app);
  registerAudit(app);

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "fleetship control plane",
      version: "1",
      description:
        "Build, replicate and deploy binaries to every region. Errors: {error:{code,message,details}}.",
    },
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json" }));
  registerDashboard(app);
  return app;
}
