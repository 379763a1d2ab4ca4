/**
 * The fleetship CLI's composition root: wires the real world (fetch, the terminal, the local
 * stack's file, the clock) into the program and exits with its code.
 *
 *   deno task cli status            npm run cli -- build hello <sha> --watch
 */
import process from "node:process";
import { run } from "./program.ts";

const encoder = new TextEncoder();
const writer = (file: typeof Deno.stdout) => (text: string) => {
  const data = encoder.encode(text);
  try {
    for (let n = 0; n < data.length; ) n += file.writeSync(data.subarray(n));
  } catch (err) {
    // The reader went away (`fleetship status | head -1`): nothing more to say.
    if (err instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw err;
  }
};

// Ctrl-C: undo what is drawn (progress bars hide the cursor), then exit as interrupted.
const cleanups = new Set<() => void>();
Deno.addSignalListener("SIGINT", () => {
  for (const cleanup of cleanups) cleanup();
  Deno.exit(130);
});

const code = await run(Deno.args, {
  fetch: globalThis.fetch,
  env: (name) => Deno.env.get(name),
  readTextFile: (path) => Deno.readTextFile(path),
  defaultLocalFile: new URL("../.data/local.json", import.meta.url).pathname,
  stdout: writer(Deno.stdout),
  stderr: writer(Deno.stderr),
  isTTY: Deno.stdout.isTerminal(),
  terminal: process.stdout,
  onInterrupt: (cleanup) => {
    cleanups.add(cleanup);
    return () => cleanups.delete(cleanup);
  },
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  pollMs: 1_000,
  unreachableGraceMs: 30_000,
});
Deno.exit(code);
