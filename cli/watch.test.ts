import assert from "node:assert/strict";
import { apiError, harness, json, sequence } from "./test-harness.ts";

const SHA = "b".repeat(40);
const build = (over: Record<string, unknown>) => ({
  id: 5,
  app: "hello",
  commit_sha: SHA,
  status: "QUEUED",
  failure_reason: null,
  failure_message: null,
  attempt: 0,
  max_attempts: 3,
  started_at: null,
  finished_at: null,
  run_after: null,
  worker_id: null,
  size_bytes: null,
  deployable: false,
  replication: [],
  ...over,
});
const region = (name: string, status: string, done: number) => ({
  region: name,
  status,
  bytes_total: 2048,
  bytes_done: done,
  percent: (done / 2048) * 100,
  error: status === "FAILED" ? "source chunk missing" : null,
});
const succeeded = {
  status: "SUCCEEDED",
  attempt: 1,
  size_bytes: 2048,
  started_at: "2026-01-01T11:59:00Z",
  finished_at: "2026-01-01T11:59:42Z",
};

function buildApi(states: Record<string, unknown>[]) {
  const next = sequence(states.map((s) => () => json(build(s))));
  return (req: Request) => (req.method === "POST" ? json(build({}), 201) : next());
}

Deno.test("build --watch shows the phases and each region's replication, exits 0 once deployable", async () => {
  const h = harness(
    buildApi([
      {},
      { status: "RUNNING", attempt: 1, worker_id: "w1" },
      {
        ...succeeded,
        replication: [region("us-east", "COMPLETE", 2048), region("eu-west", "COPYING", 1024)],
      },
      {
        ...succeeded,
        deployable: true,
        replication: [region("us-east", "COMPLETE", 2048), region("eu-west", "COMPLETE", 2048)],
      },
    ]),
  );
  assert.equal(await h.run("build", "hello", SHA, "--watch"), 0, h.stderr());
  assert.deepEqual(h.stdout().split("\n").slice(1), [
    "build 5 (hello): QUEUED",
    "build 5 (hello): RUNNING attempt 1 of 3 on w1",
    "build 5 (hello): SUCCEEDED in 42 s (2.0 KiB); replicating to 2 regions",
    "us-east: COMPLETE 100% 2.0 KiB of 2.0 KiB",
    "eu-west: COPYING 50% 1.0 KiB of 2.0 KiB",
    "eu-west: COMPLETE 100% 2.0 KiB of 2.0 KiB",
    "build 5 (hello): SUCCEEDED in 42 s (2.0 KiB); deployable",
    "Build 5 is deployable in us-east, eu-west. Deploy it with: deploy hello 5 --watch",
    "",
  ]);
});

Deno.test("build --watch exits 1 with the failure reason and message when the build fails", async () => {
  const h = harness(
    buildApi([
      { status: "RUNNING", attempt: 1 },
      {
        status: "FAILED",
        attempt: 1,
        failure_reason: "build_error",
        failure_message: "make: exit 2",
      },
    ]),
  );
  assert.equal(await h.run("build", "hello", SHA, "--watch"), 1);
  assert.equal(h.stderr(), "error build_error: build 5 failed on attempt 1: make: exit 2\n");
});

Deno.test("build --watch exits 1 when a region's replication fails", async () => {
  const h = harness(buildApi([{ ...succeeded, replication: [region("eu-west", "FAILED", 0)] }]));
  assert.equal(await h.run("build", "hello", SHA, "--watch"), 1);
  assert.match(
    h.stderr(),
    /^error replication_failed: replication of build 5 to eu-west failed: source chunk missing/,
  );
});

Deno.test("build --watch --json prints only the final build", async () => {
  const h = harness(
    buildApi([
      {},
      { ...succeeded, deployable: true, replication: [region("us-east", "COMPLETE", 2048)] },
    ]),
  );
  assert.equal(await h.run("build", "hello", SHA, "--watch", "--json"), 0);
  assert.equal(JSON.parse(h.stdout()).deployable, true);
});

Deno.test("a watch rides out a short outage, then gives up with exit 4", async () => {
  let calls = 0;
  const flaky = harness((req) => {
    if (req.method === "POST") return json(build({}), 201);
    return ++calls <= 2
      ? Promise.reject(new TypeError("reset"))
      : json(build({ ...succeeded, deployable: true }));
  });
  assert.equal(await flaky.run("build", "hello", SHA, "--watch"), 0, flaky.stderr());
  const down = harness((req) =>
    req.method === "POST" ? json(build({}), 201) : Promise.reject(new TypeError("refused")),
  );
  assert.equal(await down.run("build", "hello", SHA, "--watch"), 4);
  assert.match(down.stderr(), /^error unreachable: /);
});

const deployment = (over: Record<string, unknown>) => ({
  id: 9,
  app: "hello",
  build_id: 5,
  status: "ROLLING",
  reason: null,
  waiting: null,
  generation: 2,
  regions: [],
  ...over,
});
const counts = (healthy: number, downloading: number) => ({
  pending: 0,
  downloading,
  installed: 0,
  healthy,
  failed: 0,
  unreachable: 0,
});

Deno.test("deploy --watch shows healthy machines per region and the waiting reason", async () => {
  const next = sequence([
    () =>
      json(
        deployment({
          waiting: "waiting: 2 of 2 machines in us-east still downloading",
          regions: [
            { region: "us-east", machines: 2, counts: counts(0, 2), done: false, waiting: null },
          ],
        }),
      ),
    () =>
      json(
        deployment({
          status: "SUCCEEDED",
          reason: "every machine runs the build and is healthy",
          regions: [
            { region: "us-east", machines: 2, counts: counts(2, 0), done: true, waiting: null },
          ],
        }),
      ),
  ]);
  const h = harness((req, body) => {
    if (req.method === "POST") {
      assert.deepEqual(body, { app: "hello", build_id: 5 });
      return json(deployment({}), 201);
    }
    return next();
  });
  assert.equal(await h.run("deploy", "hello", "5", "--watch"), 0, h.stderr());
  assert.deepEqual(h.stdout().split("\n"), [
    "Deploying hello build 5: deployment 9 ROLLING, generation 2",
    "us-east: 0/2 healthy, 2 downloading",
    "deployment 9: waiting: 2 of 2 machines in us-east still downloading",
    "us-east: 2/2 healthy ✓",
    "deployment 9: SUCCEEDED: every machine runs the build and is healthy",
    "Deployment 9 SUCCEEDED: hello build 5, healthy on 2 machines.",
    "",
  ]);
});

Deno.test("deploy --watch shows a staged rollout's waves and a pause", async () => {
  const waves = (canary: string, east: string) => [
    { name: "canary", status: canary, percent: 10, detail: null },
    { name: "us-east", status: east, percent: null, detail: null },
  ];
  const next = sequence([
    () => json(deployment({ waves: waves("baking", "pending"), paused_by: "ops (t1)" })),
    () =>
      json(deployment({ status: "SUCCEEDED", reason: "done", waves: waves("passed", "passed") })),
  ]);
  const h = harness((req) => (req.method === "POST" ? json(deployment({}), 201) : next()));
  assert.equal(await h.run("deploy", "hello", "5", "--watch"), 0, h.stderr());
  const out = h.stdout();
  assert.match(
    out,
    /^waves: canary 10% baking · us-east pending\ndeployment 9: paused by ops \(t1\)$/m,
  );
  assert.match(out, /^waves: canary 10% passed · us-east passed$/m);
});

Deno.test("deploy --watch exits 1 with the reason when the deployment ends otherwise", async () => {
  for (const status of ["FAILED", "ROLLED_BACK", "ABORTED", "SUPERSEDED"]) {
    const h = harness((req) =>
      req.method === "POST"
        ? json(deployment({}), 201)
        : json(deployment({ status, reason: "because" })),
    );
    assert.equal(await h.run("deploy", "hello", "5", "--watch"), 1, status);
    assert.equal(
      h.stderr(),
      `error deployment_${status.toLowerCase()}: deployment 9 of hello build 5 ${status}: because\n`,
    );
  }
});

Deno.test("deploy of a build that is not deployable exits 3 with the API's reason", async () => {
  const h = harness(() =>
    apiError(409, "not_deployable", "build 5 is not in every region yet: eu-west COPYING 50%"),
  );
  assert.equal(await h.run("deploy", "hello", "5", "--watch"), 3);
  assert.equal(
    h.stderr(),
    "error not_deployable: build 5 is not in every region yet: eu-west COPYING 50%\n",
  );
});

Deno.test("rollback posts to the deployment's rollback", async () => {
  const h = harness(() => json(deployment({ id: 10, build_id: 4, rollback_of: 9 }), 201));
  assert.equal(await h.run("rollback", "9"), 0);
  assert.equal(h.requests[0]?.path, "/v1/deployments/9/rollback");
  assert.match(h.stdout(), /Rolling hello back to build 4: deployment 10 ROLLING/);
});
