import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe("npm start (dev/start.ts)", () => {
  it("serves /healthz with the database reachable and mints working local tokens", async () => {
    const health = await (await fetch(`${stack.url}/healthz`)).json();
    expect(health).toMatchObject({ status: "ok", database: { ok: true } });
    const apps = await fetch(`${stack.url}/v1/applications`, {
      headers: { Authorization: `Bearer ${stack.tokens.admin}` },
    });
    expect(apps.status).toBe(200);
    expect(stack.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});
