// What a redeploy moves when 1% of a bundle-like artifact changed (DESIGN section 9: at most
// 5% of the bytes). The artifact is an uncompressed archive of many files (a tar-like layout:
// a 512-byte header, then the file padded to 512 bytes); the next build changes 1% of its
// bytes, edited in place and with insertions, spread over a few or many files. Both builds go
// through the real chunker (protocol/chunker.ts, default 1/4/16 MiB); a redeploy fetches the
// chunks the old build lacks. Fixed-size 4 MiB blocks are the baseline, in the same run.
//
//   sh dev/deno.sh run -A bench/delta/main.ts [--size-mib 512] [--files 2000] [--seed 1]

import { parseArgs } from "node:util";
import { chunkStream } from "../../protocol/chunker.ts";
import { type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from "../../protocol/chunker-params.ts";
import { sha256Hex } from "../../protocol/hash.ts";
import { seededRandom } from "../../protocol/test-support.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "512" },
    files: { type: "string", default: "2000" },
    seed: { type: "string", default: "1" },
  },
});
const MiB = 1024 * 1024;
const total = Number(values["size-mib"]) * MiB;
const fileCount = Number(values.files);

const random = seededRandom(Number(values.seed));

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = (random() * 4294967296) >>> 0;
    out[i] = v;
    if (i + 1 < n) out[i + 1] = v >>> 8;
    if (i + 2 < n) out[i + 2] = v >>> 16;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

/** File sizes: log-uniform from 1 KiB up, scaled so the archive is about `total`. */
const weights = Array.from({ length: fileCount }, () => Math.exp(random() * Math.log(4096)));
const scale = total / weights.reduce((s, w) => s + w, 0);
const files = weights.map((w) => randomBytes(Math.max(1024, Math.round(w * scale))));

function archive(parts: Uint8Array[]): Uint8Array {
  const size = parts.reduce((s, f) => s + 512 + Math.ceil(f.length / 512) * 512, 0);
  const out = new Uint8Array(size);
  let at = 0;
  parts.forEach((f, i) => {
    const header = new TextEncoder().encode(`file-${i} ${f.length}`);
    out.set(header, at);
    at += 512;
    out.set(f, at);
    at += Math.ceil(f.length / 512) * 512;
  });
  return out;
}

/** The next build: 1% of the bytes rewritten, spread over `touched` files, half as insertions. */
function changed(touched: number): { next: Uint8Array[]; bytes: number } {
  const next = [...files];
  const budget = Math.round(total * 0.01);
  // Files big enough to take their share of the edit (the largest ones when too few are).
  const share = Math.ceil(budget / touched);
  let eligible = files.flatMap((f, i) => (f.length >= 2 * share ? [i] : []));
  if (eligible.length < touched) {
    eligible = files
      .map((f, i) => [f.length, i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 2 * touched)
      .map(([, i]) => i);
  }
  const picked = new Set<number>();
  while (picked.size < Math.min(touched, eligible.length)) {
    picked.add(eligible[Math.floor(random() * eligible.length)]!);
  }
  let left = budget;
  let edited = 0;
  const order = [...picked];
  order.forEach((i, k) => {
    const f = next[i]!;
    const size = Math.min(Math.ceil(left / (order.length - k)), Math.floor(f.length / 2));
    left -= size;
    edited += size;
    const at = Math.floor(random() * (f.length - size));
    const edit = randomBytes(size);
    if (k % 2 === 0) {
      const copy = f.slice();
      copy.set(edit, at);
      next[i] = copy;
    } else {
      const grown = new Uint8Array(f.length + size);
      grown.set(f.subarray(0, at));
      grown.set(edit, at);
      grown.set(f.subarray(at), at + size);
      next[i] = grown;
    }
  });
  return { next, bytes: edited };
}

/** Smaller chunks, to show what the default's 4 MiB average costs a scattered change. */
const SMALL: ChunkerParams = {
  ...DEFAULT_CHUNKER_PARAMS,
  min_size: 64 * 1024,
  avg_size: 256 * 1024,
  max_size: 1024 * 1024,
};

async function cdc(
  bytes: Uint8Array,
  params = DEFAULT_CHUNKER_PARAMS,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  async function* pieces() {
    for (let i = 0; i < bytes.length; i += 64 * 1024) yield bytes.subarray(i, i + 64 * 1024);
  }
  for await (const c of chunkStream(pieces(), { params })) out.set(c.digest, c.size);
  return out;
}

async function fixed(bytes: Uint8Array): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < bytes.length; i += 4 * MiB) {
    const block = bytes.subarray(i, i + 4 * MiB);
    out.set(await sha256Hex(block), block.length);
  }
  return out;
}

/** Bytes of `next` whose chunks `prev` lacks, over the size of `next`. */
function moved(
  prev: Map<string, number>,
  next: Map<string, number>,
): { bytes: number; of: number } {
  let bytes = 0;
  let of = 0;
  for (const [digest, size] of next) {
    of += size;
    if (!prev.has(digest)) bytes += size;
  }
  return { bytes, of };
}

const base = archive(files);
const baseCdc = await cdc(base);
const baseFixed = await fixed(base);
const baseSmall = await cdc(base, SMALL);
console.log(
  `Artifact: ${fileCount} files in an uncompressed archive, ${(base.length / MiB).toFixed(0)} MiB; ` +
    `${baseCdc.size} content-defined chunks (default 1/4/16 MiB), ${baseSmall.size} at 64/256/1024 KiB, ${baseFixed.size} fixed 4 MiB blocks.\n`,
);
console.log(
  "| 1% of the bytes changed in | bytes changed | moved, content-defined (default 1/4/16 MiB) | moved, content-defined 64/256/1024 KiB | moved, fixed 4 MiB blocks (baseline) | target ≤5% (default) |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
const rows: Record<string, unknown>[] = [];
for (const touched of [1, 5, 20, 100].filter((n) => n <= fileCount)) {
  const change = changed(touched);
  const next = archive(change.next);
  const a = moved(baseCdc, await cdc(next));
  const small = moved(baseSmall, await cdc(next, SMALL));
  const b = moved(baseFixed, await fixed(next));
  const pct = (m: { bytes: number; of: number }) => (100 * m.bytes) / m.of;
  console.log(
    `| ${touched} file${touched === 1 ? "" : "s"} | ${((100 * change.bytes) / next.length).toFixed(2)}% | ${pct(a).toFixed(1)}% (${(a.bytes / MiB).toFixed(0)} MiB) | ${pct(small).toFixed(1)}% | ${pct(b).toFixed(1)}% (${(b.bytes / MiB).toFixed(0)} MiB) | ${pct(a) <= 5 ? "met" : "MISSED"} |`,
  );
  rows.push({
    touched,
    changed_pct: +((100 * change.bytes) / next.length).toFixed(2),
    cdc_pct: +pct(a).toFixed(2),
    cdc_small_pct: +pct(small).toFixed(2),
    fixed_pct: +pct(b).toFixed(2),
  });
}
console.log(
  JSON.stringify({
    mode: "delta",
    size_mib: Math.round(base.length / MiB),
    files: fileCount,
    rows,
  }),
);
