import assert from "node:assert/strict";
import { Releases } from "./releases.ts";

async function installed(r: Releases, dir: string, buildId: number) {
  await Deno.writeTextFile(`${dir}/part-${buildId}`, `#!/bin/sh\necho ${buildId}\n`);
  await r.install(buildId, {
    partial: `${dir}/part-${buildId}`,
    manifestText: "{}",
    manifestDigest: String(buildId).repeat(64).slice(0, 64),
  });
}

Deno.test("Releases.install() puts a whole release in place and switchTo() points current at it atomically", async () => {
  const dir = await Deno.makeTempDir();
  const r = new Releases(`${dir}/apps/web`, "web");
  await r.init();
  assert.equal(await r.current(), null);
  await installed(r, dir, 7);
  assert.equal(await r.has(7, "7".repeat(64)), true);
  assert.equal(await r.has(7, "8".repeat(64)), false, "another manifest is another release");
  assert.equal((await Deno.stat(r.artifact(7))).mode! & 0o777, 0o755);
  await r.switchTo(7);
  assert.equal(await r.current(), 7);
  await installed(r, dir, 8);
  await r.switchTo(8);
  assert.equal(await Deno.readLink(`${dir}/apps/web/current`), "releases/8");
  assert.equal(await Deno.readTextFile(`${dir}/apps/web/current/web`), "#!/bin/sh\necho 8\n");
  const leftovers = [];
  for await (const e of Deno.readDir(`${dir}/apps/web`)) leftovers.push(e.name);
  assert.deepEqual(leftovers.sort(), ["current", "releases"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Releases.prune() keeps the most recently used and every protected release", async () => {
  const dir = await Deno.makeTempDir();
  const r = new Releases(`${dir}/apps/web`, "web");
  await r.init();
  for (const id of [1, 2, 3, 4, 5]) {
    await installed(r, dir, id);
    await r.switchTo(id);
    await new Promise((res) => setTimeout(res, 5));
  }
  await r.switchTo(2); // a rollback: 2 is now the most recently used
  const removed = await r.prune(3, [1]);
  assert.deepEqual(removed.sort(), [3, 4]);
  assert.deepEqual((await r.list()).map((x) => x.build_id).sort(), [1, 2, 5]);
  await Deno.remove(dir, { recursive: true });
});
