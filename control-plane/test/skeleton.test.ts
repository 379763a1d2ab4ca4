import { describe, expect, it } from "vitest";
import { call } from "./helpers.ts";

describe("control-plane skeleton", () => {
  it("GET /healthz reports the database reachable", async () => {
    const r = await call("GET", "/healthz");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      status: "ok",
      database: { ok: true },
      regions: ["us-east", "eu-west", "ap-south"],
    });
    expect(r.headers.get("X-Request-Id")).toMatch(/\S/);
  });

  it("echoes a caller's request id", async () => {
    const r = await call("GET", "/healthz", { headers: { "X-Request-Id": "trace-123" } });
    expect(r.headers.get("X-Request-Id")).toBe("trace-123");
  });

  it("answers an unknown route with the error format", async () => {
    const r = await call("GET", "/v1/nope");
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: "not_found" });
    expect(r.body.error.message).toContain("/v1/nope");
    expect(r.body.error.request_id).toBeTruthy();
  });

  it("serves an OpenAPI document generated from the routes, and browsable docs", async () => {
    const r = await call("GET", "/openapi.json");
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe("3.1.0");
    const paths = Object.keys(r.body.paths);
    for (const p of [
      "/healthz",
      "/v1/builds",
      "/v1/builds/{id}",
      "/v1/worker/claim",
      "/v1/applications",
    ]) {
      expect(paths).toContain(p);
    }
    expect(r.body.paths["/v1/builds"].post.responses["400"]).toBeDefined();
    const docs = await call("GET", "/docs");
    expect(docs.status).toBe(200);
    expect(docs.headers.get("Content-Type")).toMatch(/text\/html/);
    expect(docs.body).toContain("/openapi.json");
  });
});
