import { log } from "./log.ts";

/** A child process the launcher started, with its output relayed as structured log lines. */
export interface Child {
  name: string;
  pid: number;
  /** Resolves with the first output line that matches, or rejects when the child exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
  exited: Promise<Deno.CommandStatus>;
}

export function spawn(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Child {
  const proc = new Deno.Command(cmd, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const recent: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, kind: string) => {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes from child output
        const line = buf.slice(0, nl).replace(/\x1b\[[0-9;]*m/g, "");
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        recent.push(line);
        if (recent.length > 40) recent.shift();
        for (const w of [...waiters]) {
          if (w.pattern.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
        if (Deno.env.get("FLEETSHIP_VERBOSE") || kind === "stderr") {
          if (line.trim()) log("info", "child:output", { child: name, stream: kind, line });
        }
      }
    }
  };
  void pump(proc.stdout, "stdout");
  void pump(proc.stderr, "stderr");
  const exited = proc.status;
  return {
    name,
    pid: proc.pid,
    exited,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `${name} did not print ${pattern} within ${timeoutMs} ms; last output:\n${recent.join("\n")}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then((s) => {
          clearTimeout(timer);
          reject(
            new Error(
              `${name} exited (code ${s.code}) before printing ${pattern}; last output:\n${recent.join("\n")}`,
            ),
          );
        });
      });
    },
    async stop() {
      try {
        proc.kill("SIGTERM");
      } catch {
        return; // already gone
      }
      const killer = setTimeout(() => {
        try {
          proc.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Refuses to start on a busy port with a message that says which and what to do. */
export function assertPortFree(port: number, what: string, flag: string): void {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `port ${port} (${what}) is busy: stop what uses it, or pick another with ${flag}`,
      );
    }
    throw err;
  }
}
