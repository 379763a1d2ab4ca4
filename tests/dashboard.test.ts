import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./support/browser.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let browser: Browser;
let page: Page;
let relayToken: string;

async function api(method: string, path: string, token: string, body?: unknown): Promise<any> {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A SUCCEEDED build of an empty artifact: it is in every region at once, so deployable. */
async function deployableBuild(commit: string): Promise<number> {
  const q = await api("POST", "/v1/builds", stack.tokens.deployer, {
    app: "web",
    commit_sha: commit,
  });
  const claim = await api("POST", "/v1/worker/claim", stack.tokens.builder, {
    worker_id: "ui-test",
  });
  expect(claim.body.build.id).toBe(q.body.id);
  const manifest = {
    version: 1,
    app: "web",
    build_id: q.body.id,
    commit_sha: commit,
    created_at: new Date().toISOString(),
    size: 0,
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    chunker: {
      algorithm: "fastcdc-2020",
      min_size: 1048576,
      avg_size: 4194304,
      max_size: 16777216,
      normalization: 2,
    },
    chunks: [],
  };
  const done = await api("POST", `/v1/worker/builds/${q.body.id}/complete`, stack.tokens.builder, {
    lease_token: claim.body.lease_token,
    manifest,
  });
  expect(done.status, JSON.stringify(done.body)).toBe(200);
  return q.body.id;
}

/**
 * Plays a region relay over the real subscription WebSocket: the relay is a separate program
 * (region-relay/); here only its status reports matter, so the test sends them itself.
 */
async function relay(
  region: string,
): Promise<{ report(machines: unknown[]): void; close(): void }> {
  const ws = new WebSocket(`${stack.url.replace("http", "ws")}/v1/regions/${region}/subscribe`, {
    headers: { Authorization: `Bearer ${relayToken}` },
  } as unknown as string[]);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", reject);
  });
  ws.send(JSON.stringify({ type: "hello", relay_id: "relay-ui-1", url: null }));
  return {
    report: (machines) =>
      ws.send(JSON.stringify({ type: "status", relay_id: "relay-ui-1", machines })),
    close: () => ws.close(),
  };
}

beforeAll(async () => {
  stack = await startStack();
  browser = await launchBrowser();
  page = await browser.newPage();
  const r = await api("POST", "/v1/applications", stack.tokens.admin, {
    name: "web",
    repo_url: "file:///srv/web.git",
    build_command: "make",
    artifact_path: "out/web",
    run_command: "./web",
    // The test plays eu-west's only relay: a target region nobody reports would never pass.
    regions: ["eu-west"],
  });
  expect(r.status).toBe(201);
  relayToken = (
    await api("POST", "/v1/tokens", stack.tokens.admin, {
      name: "ui relay",
      role: "relay",
      region: "eu-west",
    })
  ).body.token;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe("operator dashboard (headless Chromium)", () => {
  it("asks for a token, refuses a wrong one, and shows the overview once signed in", async () => {
    await page.goto(`${stack.url}/ui`);
    expect(page.url()).toContain("/ui/login");
    await page.fill("input[name=token]", "fst_not_a_real_token");
    await page.click("button[type=submit]");
    await expect.poll(() => page.textContent("body")).toContain("That token was not accepted");
    await page.fill("input[name=token]", stack.tokens.deployer);
    await page.click("button[type=submit]");
    await page.waitForURL(`${stack.url}/ui`);
    const text = await page.textContent("main");
    for (const region of ["us-east", "eu-west", "ap-south"]) expect(text).toContain(region);
    expect(text).toContain("Deployments");
  });

  it("shows a build's status and replication, deploys it, and pushes rollout progress live", {
    timeout: 90_000,
  }, async () => {
    const old = await deployableBuild("1".repeat(40));
    const id = await deployableBuild("2".repeat(40));
    expect(
      (await api("POST", "/v1/deployments", stack.tokens.deployer, { app: "web", build_id: old }))
        .status,
    ).toBe(201);
    const r = await relay("eu-west");
    // Machines report the generation of the goal they acted on, as agents do.
    const machines = async (build: number, states: string[]) => {
      const goal = await api("GET", "/v1/goal", stack.tokens.deployer);
      const generation = goal.body.apps.web?.generation ?? null;
      return states.map((state, i) => ({
        machine_id: `m${i}`,
        app: "web",
        build_id: build,
        generation,
        state,
      }));
    };
    r.report(await machines(old, ["healthy", "healthy", "healthy"]));

    await page.goto(`${stack.url}/ui/builds/${id}`);
    expect(await page.textContent("#build-header")).toContain("SUCCEEDED");
    expect(await page.textContent("#build-header")).toContain("deployable: yes");
    expect(await page.textContent("#replication tr[data-region=eu-west]")).toContain("COMPLETE");
    await page.click("#deploy-button");
    await page.waitForURL(/\/ui\/deployments\/\d+$/);
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    r.report(await machines(id, ["healthy", "downloading", "downloading"]));
    await expect
      .poll(() => page.textContent("[data-waiting]"), { timeout: 15_000 })
      .toBe("waiting: 2 of 3 machines in eu-west still downloading");
    r.report(await machines(id, ["healthy", "healthy", "healthy"]));
    await expect
      .poll(() => page.textContent("#rollout"), { timeout: 20_000 })
      .toContain("SUCCEEDED");
    expect(
      await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
    ).toBe(true);
    await page.screenshot({
      path: `${stack.dataDir}/../fleetship-dashboard-deployment.png`,
      fullPage: true,
    });

    await page.click("#rollback-button");
    await page.waitForURL(/\/ui\/deployments\/\d+$/);
    expect(await page.textContent("#rollout")).toContain(`build #${old}`);
    r.close();
  });

  it("shows a failed machine on the overview with its reason, after any deployment ended", async () => {
    const r = await relay("eu-west");
    const detail =
      "the app's process exited with code 3 after it was healthy; 4 restarts since the release started";
    r.report([
      { machine_id: "m0", app: "web", build_id: 1, generation: 1, state: "healthy" },
      {
        machine_id: "m7",
        app: "web",
        build_id: 1,
        generation: 1,
        state: "failed",
        detail,
        restarts: 4,
      },
    ]);
    await expect
      .poll(
        async () => {
          await page.goto(`${stack.url}/ui`);
          return page.textContent("[data-failed=eu-west]").catch(() => null);
        },
        { timeout: 15_000 },
      )
      .toContain("1 failed");
    expect(await page.textContent("[data-failed=eu-west] [data-machine=m7]")).toBe(
      `m7 web (4 restarts): ${detail}`,
    );
    r.close();
  });

  it("refuses to deploy a build that is not deployable, saying why", async () => {
    const q = await api("POST", "/v1/builds", stack.tokens.deployer, {
      app: "web",
      commit_sha: "3".repeat(40),
    });
    await page.goto(`${stack.url}/ui/builds/${q.body.id}`);
    await page.click("#deploy-button");
    await expect.poll(() => page.textContent(".error")).toContain("only SUCCEEDED builds deploy");
  });
});
