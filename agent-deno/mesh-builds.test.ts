import assert from "node:assert/strict";
import { MeshBuilds } from "./mesh-builds.ts";

Deno.test("MeshBuilds.read() serves only chunks marked done, from the partial then the release", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const partial = `${dir}/app.part`;
    const release = `${dir}/app`;
    await Deno.writeFile(partial, Uint8Array.of(1, 2, 3, 4, 5));
    const builds = new MeshBuilds();
    const done = new Uint8Array(1);
    builds.add({ buildId: 9, sizes: [2, 3], done, partialPath: partial, releasePath: release });
    assert.equal(await builds.read(9, 1), null); // not verified yet
    done[0] = 0b10;
    assert.deepEqual([...(await builds.read(9, 1))!], [3, 4, 5]);
    await Deno.rename(partial, release); // installed
    assert.deepEqual([...(await builds.read(9, 1))!], [3, 4, 5]);
    assert.equal(await builds.read(9, 0), null);
    assert.equal(await builds.read(8, 0), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MeshBuilds.addRelease() offers every chunk of an installed release", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/app`, new Uint8Array(10).fill(7));
    const builds = new MeshBuilds();
    builds.addRelease(4, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], `${dir}/app`);
    assert.deepEqual([...builds.get(4)!.done], [0xff, 0b11]);
    assert.deepEqual([...(await builds.read(4, 9))!], [7]);
    assert.equal(builds.get(4)!.active, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
