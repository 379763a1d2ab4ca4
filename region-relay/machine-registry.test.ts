import assert from "node:assert/strict";
import type { AppStatus } from "../protocol/relay-messages.ts";
import { MachineRegistry, memoryMachineStore } from "./machine-registry.ts";

const app = (name: string, over: Partial<AppStatus> = {}): AppStatus => ({
  app: name,
  build_id: 5,
  generation: 2,
  state: "healthy",
  detail: null,
  running_build_id: 5,
  progress: null,
  ...over,
});

Deno.test("MachineRegistry.reports() lists each machine's apps as the status message wants them", () => {
  let changes = 0;
  const r = new MachineRegistry({ store: memoryMachineStore(), onChange: () => changes++ });
  r.hello("m1", [app("web")], null);
  r.status("m2", [
    app("web", {
      state: "downloading",
      progress: { chunks_done: 3, chunks_total: 10, bytes_done: 3 << 20, bytes_total: 10 << 20 },
    }),
    app("api", { state: "failed", detail: "health check failed: 503" }),
  ]);
  assert.equal(changes, 2);
  assert.deepEqual(r.reports(), [
    {
      machine_id: "m1",
      app: "web",
      build_id: 5,
      generation: 2,
      state: "healthy",
      detail: null,
      connected: true,
    },
    {
      machine_id: "m2",
      app: "web",
      build_id: 5,
      generation: 2,
      state: "downloading",
      detail: "3/10 chunks, 3.0/10.0 MiB",
      connected: true,
    },
    {
      machine_id: "m2",
      app: "api",
      build_id: 5,
      generation: 2,
      state: "failed",
      detail: "health check failed: 503",
      connected: true,
    },
  ]);
});

Deno.test("MachineRegistry keeps reporting a disconnected machine for the grace period, then forgets it", () => {
  let now = 0;
  const store = memoryMachineStore();
  const r = new MachineRegistry({ store, graceMs: 1000, now: () => now });
  r.hello("m1", [app("web")], null);
  r.disconnected("m1");
  assert.equal(r.connectedCount, 0);
  now = 900;
  r.prune();
  assert.deepEqual(
    r.reports().map((m) => m.connected),
    [false],
  );
  now = 1100;
  r.prune();
  assert.equal(r.reports().length, 0);
  assert.equal(store.map.size, 0);
});

Deno.test("MachineRegistry.load() brings known machines back after a restart, as disconnected", async () => {
  const store = memoryMachineStore();
  const first = new MachineRegistry({ store });
  first.hello("m1", [app("web")], "ws://10.0.0.1:7000");
  await new Promise((r) => setTimeout(r, 0));
  const second = new MachineRegistry({ store });
  assert.equal(await second.load(), 1);
  assert.equal(second.connectedCount, 0);
  assert.equal(second.get("m1")?.peerUrl, "ws://10.0.0.1:7000");
  assert.equal(second.reports().length, 1);
});
