/**
 * The dashboard driving real agents: a relay and two agents (Deno processes) in one region,
 * builds published through the API. Deploying from a build's page shows the rollout live
 * (pushed, not reloaded) until every machine is healthy, and the rollback button brings every
 * agent back to the previous build.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./support/browser.ts";
import {
  type DenoProcess,
  enrollmentSecret,
  must,
  publishBuild,
  servedBuild,
  startAgent,
  startRelay,
  testArtifact,
  until,
} from "./support/relay-agent.ts";
import { type Stack, startStack } from "./support/stack.ts";

const APP = "ui-demo";
const REGION = "eu-west";
let stack: Stack;
let browser: Browser;
let page: Page;
let work: string;
const procs: DenoProcess[] = [];
const appPorts: number[] = [];
const builds = { a: 0, b: 0 };
const served = () => Promise.all(appPorts.map((p) => servedBuild(p)));

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fleetship-ui-agents-"));
  stack = await startStack();
  const secret = await enrollmentSecret(stack);
  await must(stack, "POST", "/v1/applications", {
    token: stack.tokens.admin,
    body: {
      name: APP,
      repo_url: "file:///srv/git/ui-demo.git",
      build_command: "true",
      artifact_path: "out/app",
      run_command: `./${APP}`,
      health_check: { type: "http", path: "/healthz", port: 8080 },
      regions: [REGION],
    },
  });
  builds.a = (
    await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 32 * 1024, seed: 21 }))
  ).buildId;
  builds.b = (
    await publishBuild(stack, APP, (id) => testArtifact(id, { padBytes: 32 * 1024, seed: 22 }))
  ).buildId;
  const relay = await startRelay(stack, { region: REGION, name: "ui-relay", work });
  procs.push(relay.proc);
  for (let i = 0; i < 2; i++) {
    const agent = await startAgent(stack, {
      region: REGION,
      name: `ui-m${i}`,
      work,
      relay: relay.url,
      secret,
    });
    procs.push(agent.proc);
    appPorts.push(agent.appPort);
  }
  await must(stack, "POST", "/v1/deployments", {
    token: stack.tokens.deployer,
    body: { app: APP, build_id: builds.a },
  });
  await until(
    "both agents serving build a",
    async () => (await served()).every((b) => b === builds.a),
    60_000,
  );
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.goto(`${stack.url}/ui/login`);
  await page.fill("input[name=token]", stack.tokens.deployer);
  await page.click("button[type=submit]");
  await page.waitForURL(`${stack.url}/ui`);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  for (const p of procs.reverse()) await p.stop();
  await stack?.stop();
  if (!process.env.KEEP_TEST_DIR) await rm(work, { recursive: true, force: true });
});

describe("dashboard with real agents", () => {
  it("deploys from the build page, shows the rollout live, and the rollback button reaches every agent", async () => {
    await page.goto(`${stack.url}/ui/builds/${builds.b}`);
    await page.click("#deploy-button");
    await page.waitForURL(/\/ui\/deployments\/\d+$/);
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    await expect
      .poll(() => page.textContent("#rollout"), { timeout: 60_000 })
      .toContain("SUCCEEDED");
    expect(await page.textContent(`#rollout tr[data-region=${REGION}] [data-count=machines]`)).toBe(
      "2",
    );
    expect(
      await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
    ).toBe(true);
    expect(await page.evaluate(() => document.body.dataset.updated)).toBeTruthy();
    expect(await served()).toEqual([builds.b, builds.b]);

    await page.click("#rollback-button");
    await page.waitForURL(/\/ui\/deployments\/\d+$/);
    expect(await page.textContent("#rollout")).toContain(`build #${builds.a}`);
    await until(
      "every agent back on build a",
      async () => (await served()).every((b) => b === builds.a),
      60_000,
    );
    await expect
      .poll(() => page.textContent("#rollout"), { timeout: 60_000 })
      .toContain("SUCCEEDED");
  }, 150_000);
});
