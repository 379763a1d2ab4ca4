import assert from "node:assert/strict";
import { checkHealth } from "./health.ts";
import { listeners, ownershipProblem, parseTcpTable, portRefusal } from "./port-owner.ts";

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
`;

Deno.test("parseTcpTable() keeps listening sockets with their port, uid and inode", () => {
  assert.deepEqual(parseTcpTable(TABLE), [
    { port: 8080, inode: 4242, uid: 1000 },
    { port: 22, inode: 17, uid: 0 },
  ]);
});

/** A listener in another process (so its pid is not ours), answering 200 on every path. */
async function foreignServer(): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const s = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) }, () => new Response("ok"));`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const port = Number((await reader.read()).value);
  return {
    port,
    pid: child.pid,
    stop: async () => {
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel();
    },
  };
}

Deno.test("portRefusal() names the process holding an app's port; a free port is fine", async () => {
  const foreign = await foreignServer();
  try {
    const refusal = await portRefusal(foreign.port);
    assert.match(
      refusal ?? "",
      new RegExp(
        `^port ${foreign.port} is held by pid ${foreign.pid} \\(.*deno eval .*\\), not by this agent's app$`,
      ),
    );
    // Its own app group's socket is not a refusal.
    assert.equal(await portRefusal(foreign.port, [foreign.pid]), null);
  } finally {
    await foreign.stop();
  }
  assert.equal(await portRefusal(foreign.port), null);
});

Deno.test("ownershipProblem() proves a port is the group's only when its listener is", async () => {
  const foreign = await foreignServer();
  try {
    assert.equal(await ownershipProblem(foreign.port, [foreign.pid]), null);
    assert.match(
      (await ownershipProblem(foreign.port, [Deno.pid])) ?? "",
      new RegExp(
        `^port ${foreign.port} is held by pid ${foreign.pid} .*, not by the app's process$`,
      ),
    );
    assert.equal((await listeners(foreign.port))?.length, 1);
  } finally {
    await foreign.stop();
  }
  assert.equal(
    await ownershipProblem(foreign.port, [foreign.pid]),
    `nothing listens on port ${foreign.port}`,
  );
});

Deno.test("checkHealth() does not count a 200 answered on the app's port by another process", async () => {
  const foreign = await foreignServer();
  try {
    const result = await checkHealth({
      check: { type: "http", path: "/healthz", port: foreign.port },
      port: foreign.port,
      dir: "/",
      env: {},
      deadlineMs: 600,
      exited: null,
      // The app's group: this test process, which does not hold the port.
      ownership: async () => (await ownershipProblem(foreign.port, [Deno.pid])) ?? null,
      signal: new AbortController().signal,
      intervalMs: 100,
    });
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? "" : result.reason,
      new RegExp(
        `^not healthy within 1 s: GET /healthz answered 200, but port ${foreign.port} is held by pid ${foreign.pid} `,
      ),
    );
  } finally {
    await foreign.stop();
  }
});
