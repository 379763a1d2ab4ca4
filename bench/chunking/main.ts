// Chunking throughput and peak memory on a generated stream, against plain SHA-256 of the same
// stream. Each case runs in its own Deno process so that its peak RSS is its own.
//
//   sh dev/deno.sh run --allow-run --allow-read bench/chunking/main.ts [--size-mib=1024]
//
// The stream is `--size-mib` MiB in 64 KiB reads (what Deno's file streams hand out), each a
// fresh copy taken from 64 MiB of pseudo-random bytes at a moving offset, so no chunk repeats.

import { createHash } from "node:crypto";
import {
  chunkStream,
  createSha256,
  DEFAULT_CHUNKER_PARAMS,
  type IncrementalHash,
  manifestFromStream,
  sha256HexOfStream,
} from "../../protocol/index.ts";
import { fillPseudoRandom } from "../../protocol/test-support.ts";

const MiB = 1024 * 1024;
const READ_SIZE = 64 * 1024;

interface Case {
  readonly name: string;
  run(stream: ReadableStream<Uint8Array>): Promise<unknown>;
}

const native = (): IncrementalHash => createHash("sha256");

const CASES: readonly Case[] = [
  { name: "read the stream only", run: drain },
  { name: "sha256, native (node:crypto)", run: (s) => sha256HexOfStream(s, native()) },
  { name: "sha256, portable (@noble/hashes)", run: (s) => sha256HexOfStream(s, createSha256()) },
  { name: "chunkStream, digests only", run: (s) => count(chunkStream(s)) },
  { name: "chunkStream, with bytes", run: (s) => count(chunkStream(s, { withBytes: true })) },
  {
    name: "manifest (chunks + native whole-file sha256)",
    run: (s) => manifestFromStream(s, IDENTITY, { createHasher: native }),
  },
  {
    name: "manifest (chunks + portable whole-file sha256)",
    run: (s) => manifestFromStream(s, IDENTITY),
  },
];

const IDENTITY = { app: "bench", build_id: 1, commit_sha: "0".repeat(40) };

function generated(totalBytes: number): ReadableStream<Uint8Array> {
  const source = new Uint8Array(64 * MiB);
  fillPseudoRandom(source, 7);
  let sent = 0;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= totalBytes) return controller.close();
      const size = Math.min(READ_SIZE, totalBytes - sent);
      // A fresh array per read, as a file stream gives; the offset walks by an odd stride.
      controller.enqueue(source.slice(at, at + size));
      sent += size;
      at = (at + size + 4099) % (source.length - READ_SIZE);
    },
  });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const _ of stream) {
    // only reading
  }
}

async function count(chunks: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of chunks) n++;
  return n;
}

/** Peak resident memory, sampled every 10 ms (reading VmHWM would need --allow-all). */
function trackPeakRss(): { stop(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, Deno.memoryUsage().rss) / MiB;
    },
  };
}

async function child(index: number, sizeMiB: number): Promise<void> {
  const benchCase = CASES[index]!;
  // Warm the JIT first so the figure is the steady state (64 MiB of warm-up left the chunker
  // cases about 35% below it).
  await benchCase.run(generated(256 * MiB));
  const rss = trackPeakRss();
  const start = performance.now();
  await benchCase.run(generated(sizeMiB * MiB));
  const seconds = (performance.now() - start) / 1000;
  const result = { mbPerS: (sizeMiB * MiB) / 1e6 / seconds, peakRssMiB: rss.stop() };
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const sizeArg = Deno.args.find((a) => a.startsWith("--size-mib="));
  const sizeMiB = sizeArg ? Number(sizeArg.split("=")[1]) : 1024;
  const caseArg = Deno.args.find((a) => a.startsWith("--case="));
  if (caseArg) return child(Number(caseArg.split("=")[1]), sizeMiB);

  const p = DEFAULT_CHUNKER_PARAMS;
  console.log(
    `chunking ${sizeMiB} MiB, min/avg/max ${p.min_size / MiB}/${p.avg_size / MiB}/${p.max_size / MiB} MiB, ` +
      `${READ_SIZE / 1024} KiB reads, Deno ${Deno.version.deno}\n`,
  );
  const rows: string[][] = [["case", "MB/s", "peak RSS MiB"]];
  for (const [index, benchCase] of CASES.entries()) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        new URL(import.meta.url).pathname,
        `--case=${index}`,
        `--size-mib=${sizeMiB}`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!output.success) throw new Error(`case "${benchCase.name}" failed`);
    const result = JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").at(-1)!);
    rows.push([benchCase.name, result.mbPerS.toFixed(0), result.peakRssMiB.toFixed(0)]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  for (const row of rows) {
    console.log(
      row
        .map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)))
        .join("  "),
    );
  }
}

if (import.meta.main) await main();
