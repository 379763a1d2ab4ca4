// The floor under an agent's CPU per GiB on this machine: the work no agent can skip, timed in
// this process in the same run as the modes it is compared with. Per chunk: sha256 (verified
// before it is written, DESIGN section 5) and a positioned write into a fresh partial file;
// at the end an fsync, a read back and the whole-file sha256 (DESIGN section 8). Receiving the
// bytes from a socket, and in the mesh sending them on, come on top of it.
import { createHash } from "node:crypto";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";

export interface Floor {
  hashS: number;
  writeS: number;
  readBackS: number;
  wholeHashS: number;
  /** All four, per GiB. */
  perGiB: number;
}

/** CPU-seconds (user + system) this process spends in `f`. */
async function cpuOf(f: () => Promise<void> | void): Promise<number> {
  const before = process.cpuUsage();
  await f();
  const spent = process.cpuUsage(before);
  return (spent.user + spent.system) / 1e6;
}

/** `artifact` cut into `chunk`-byte pieces written in a shuffled order, as a download does. */
export async function measureFloor(
  artifact: Uint8Array,
  work: string,
  chunk = 1 << 20,
): Promise<Floor> {
  const path = join(work, "floor.partial");
  const count = Math.ceil(artifact.length / chunk);
  const order = Array.from({ length: count }, (_, i) => (i * 7919) % count);
  const pieces = order.map((i) => ({
    at: i * chunk,
    bytes: artifact.slice(i * chunk, Math.min(artifact.length, (i + 1) * chunk)),
  }));
  const file = await open(path, "w+");
  try {
    await file.truncate(artifact.length);
    const hashS = await cpuOf(() => {
      for (const p of pieces) createHash("sha256").update(p.bytes).digest("hex");
    });
    const writeS = await cpuOf(async () => {
      for (const p of pieces) await file.write(p.bytes, 0, p.bytes.length, p.at);
      await file.sync();
    });
    const buffer = new Uint8Array(1 << 20);
    const whole = createHash("sha256");
    let readBackS = 0;
    let wholeHashS = 0;
    for (let offset = 0; offset < artifact.length; ) {
      let got = 0;
      readBackS += await cpuOf(async () => {
        got = (await file.read(buffer, 0, buffer.length, offset)).bytesRead;
      });
      wholeHashS += await cpuOf(() => void whole.update(buffer.subarray(0, got)));
      offset += got;
    }
    whole.digest("hex");
    const gib = artifact.length / (1 << 30);
    return {
      hashS,
      writeS,
      readBackS,
      wholeHashS,
      perGiB: (hashS + writeS + readBackS + wholeHashS) / gib,
    };
  } finally {
    await file.close();
    await rm(path, { force: true });
  }
}
