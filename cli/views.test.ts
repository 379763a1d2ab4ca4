import assert from "node:assert/strict";
import { harness, json, T0 } from "./test-harness.ts";

Deno.test("status shows the goal, deployments with their live waiting reason, and builds", async () => {
  const h = harness((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/goal") {
      const target = { generation: 4, deployment_id: 9, build_id: 12 };
      return json({
        generation: 4,
        apps: {
          hello: {
            app: "hello",
            generation: 4,
            deployment_id: 9,
            build_id: 12,
            regions: { "us-east": target },
          },
        },
      });
    }
    if (path === "/v1/deployments") {
      return json({
        deployments: [
          {
            id: 9,
            app: "hello",
            build_id: 12,
            status: "ROLLING",
            waiting: "setting the goal",
            created_by: "me (abc)",
            created_at: new Date(T0).toISOString(),
          },
        ],
      });
    }
    if (path === "/v1/deployments/9") {
      return json({
        id: 9,
        app: "hello",
        build_id: 12,
        status: "ROLLING",
        waiting: "waiting: 2 of 3 machines in us-east still downloading",
        created_by: "me (abc)",
        created_at: new Date(T0).toISOString(),
        regions: [],
      });
    }
    return json({ builds: [] });
  });
  assert.equal(await h.run("status", "hello"), 0, h.stderr());
  const out = h.stdout();
  assert.match(
    out,
    /Goal \(generation 4\)\nAPP\s+BUILD\s+DEPLOYMENT\s+GENERATION\s+REGIONS\nhello\s+12\s+9\s+4\s+us-east\n/,
  );
  assert.match(
    out,
    /9\s+hello\s+12\s+ROLLING\s+just now\s+me\s+waiting: 2 of 3 machines in us-east still downloading/,
  );
  assert.match(out, /Latest builds\n {2}none yet/);
  assert.ok(h.requests.some((r) => r.path === "/v1/deployments?app=hello&limit=5"));
});

Deno.test("machines passes its filters and summarises the states", async () => {
  const m = (id: string, state: string, reachable = true) => ({
    region: "us-east",
    machine_id: id,
    app: "hello",
    build_id: 3,
    state,
    reachable,
    relay_id: "r1",
    reported_at: new Date(T0 - 10_000).toISOString(),
  });
  const h = harness(() =>
    json({
      machines: [m("m1", "healthy"), m("m2", "healthy"), m("m3", "downloading", false)],
      next_cursor: null,
      partial: [],
      relays: [
        {
          region: "us-east",
          relay_id: "r1",
          url: null,
          machines: 3,
          last_report_at: new Date(T0).toISOString(),
          stale: false,
        },
      ],
    }),
  );
  assert.equal(await h.run("machines", "--region", "us-east", "--app", "hello"), 0);
  assert.equal(h.requests[0]?.path, "/v1/machines?region=us-east&app=hello");
  assert.match(h.stdout(), /m3\s+hello\s+3\s+downloading\s+no\s+r1\s+10 s ago/);
  assert.match(h.stdout(), /3 machines: 2 healthy, 1 downloading; 1 unreachable/);
  assert.match(
    h.stdout(),
    /REGION\s+RELAY\s+MACHINES\s+LAST REPORT\s+URL\nus-east\s+r1\s+3\s+just now\s+-/,
  );
});

Deno.test("machines pages: one page says how to get the next; --all follows every cursor", async () => {
  const m = (id: string) => ({
    region: "us-east",
    machine_id: id,
    app: "hello",
    build_id: 3,
    state: "healthy",
    reachable: true,
    relay_id: "r1",
    reported_at: new Date(T0).toISOString(),
  });
  const pages: Record<string, object> = {
    "": { machines: [m("m1"), m("m2")], next_cursor: "c2", partial: [] },
    c2: {
      machines: [m("m3")],
      next_cursor: null,
      partial: [{ region: "us-east", relay_id: "r2" }],
    },
  };
  const route = (req: Request) =>
    json({ relays: [], ...pages[new URL(req.url).searchParams.get("cursor") ?? ""] });
  const one = harness(route);
  assert.equal(await one.run("machines", "--state", "healthy"), 0);
  assert.equal(one.requests.length, 1);
  assert.equal(one.requests[0]?.path, "/v1/machines?state=healthy");
  assert.match(one.stdout(), /2 machines: 2 healthy on this page/);
  assert.match(one.stdout(), /More machines: --cursor c2 for the next page, or --all/);
  const all = harness(route);
  assert.equal(await all.run("machines", "--all"), 0);
  assert.deepEqual(
    all.requests.map((r) => r.path),
    ["/v1/machines", "/v1/machines?cursor=c2"],
  );
  assert.match(all.stdout(), /3 machines: 3 healthy\n/);
  assert.match(
    all.stdout(),
    /Relay r2 \(us-east\) did not answer in time: its machines are missing/,
  );
});

Deno.test("machines shows each machine's restarts, and why every failed one failed", async () => {
  const reported_at = new Date(T0).toISOString();
  const base = { region: "eu-west", app: "web", generation: 3, relay_id: "r1", reported_at };
  const detail =
    "the app's process exited with code 3 after it was healthy; 2 restarts since the release started";
  const h = harness(() =>
    json({
      machines: [
        { ...base, machine_id: "m1", build_id: 7, state: "healthy", reachable: true, restarts: 0 },
        {
          ...base,
          machine_id: "m2",
          build_id: 7,
          state: "failed",
          reachable: true,
          restarts: 2,
          detail,
        },
      ],
      relays: [],
      next_cursor: null,
      partial: [],
    }),
  );
  assert.equal(await h.run("machines"), 0);
  const out = h.stdout();
  assert.match(
    out,
    /^REGION\s+MACHINE\s+APP\s+BUILD\s+STATE\s+REACHABLE\s+RELAY\s+REPORTED\s+RESTARTS$/m,
  );
  assert.match(out, /^eu-west\s+m2\s+web\s+7\s+failed\s+yes\s+r1\s+\S+.*\s2$/m);
  assert.match(out, /^2 machines: 1 healthy, 1 failed$/m);
  assert.ok(out.includes(`  m2 web (eu-west): ${detail}\n`));
  assert.ok(!out.includes("m1 web (eu-west)"));
});
