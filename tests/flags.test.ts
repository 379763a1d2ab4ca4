/**
 * Every program, started as a user starts it, answers a flag it does not know, a flag without
 * its value and a value it cannot use with one line naming the flag, its usage, and exit code
 * 2, never a stack trace; and it starts nothing meanwhile.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { DENO, ROOT } from "./support/stack.ts";

interface Program {
  name: string;
  /** How the program prefixes its error lines. */
  prefix: string;
  /** A line of its usage. */
  usage: RegExp;
  run: string[];
  /** Flags that make everything else valid, so the flag under test is the only problem. */
  valid: string[];
  env?: Record<string, string>;
}

const PROGRAMS: Program[] = [
  {
    name: "agent",
    prefix: "fleetship-agent: ",
    usage: /^fleetship-agent --region REGION --relay URL/m,
    run: ["run", "-A", "--unstable-kv", "agent-deno/main.ts"],
    valid: ["--region", "us-east", "--relay", "http://127.0.0.1:1", "--machine-id", "m1"],
  },
  {
    name: "relay",
    prefix: "fleetship-relay: ",
    usage: /^deno task region-relay --url URL --region REGION/m,
    run: ["run", "-A", "--unstable-kv", "region-relay/main.ts"],
    valid: ["--url", "http://127.0.0.1:1", "--region", "us-east"],
    env: { FLEETSHIP_RELAY_TOKEN: "fst_x_y" },
  },
  {
    name: "build worker",
    prefix: "fleetship-build-worker: ",
    usage: /^deno task build-worker --url URL/m,
    run: ["run", "-A", "build-worker/main.ts"],
    valid: ["--url", "http://127.0.0.1:1"],
    env: { FLEETSHIP_BUILDER_TOKEN: "fst_x_y" },
  },
  {
    name: "local libSQL server",
    prefix: "fleetship-libsql: ",
    usage: /^deno task libsql \[options\]/m,
    run: ["run", "-A", "dev/libsql/main.ts"],
    valid: [],
  },
  {
    name: "npm start",
    prefix: "npm start: ",
    usage: /^npm start -- \[options\]/m,
    run: ["run", "-A", "dev/start.ts"],
    valid: [],
  },
];

/** A flag each program takes a number for, and a value it must refuse. */
const NUMERIC: Record<string, string> = {
  agent: "--peer-port",
  relay: "--port",
  "build worker": "--slots",
  "local libSQL server": "--port",
  "npm start": "--port",
};

function runProgram(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(DENO, args, {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/tmp",
        NO_COLOR: "1",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.each(PROGRAMS)("the $name's flags", (p) => {
  const cases: [string, string[], RegExp][] = [
    ["an unknown flag", ["--no-such-flag"], /^--no-such-flag: unknown flag$/],
    [
      "a flag without its value",
      [NUMERIC[p.name]!],
      new RegExp(`^${NUMERIC[p.name]}: needs a value$`),
    ],
    [
      "a value it cannot use",
      [NUMERIC[p.name]!, "lots"],
      new RegExp(`^${NUMERIC[p.name]}\\b.*"lots"`),
    ],
  ];
  it.each(cases)("%s: one line naming the flag, the usage, exit 2", async (_what, bad, line) => {
    const r = await runProgram([...p.run, ...p.valid, ...bad], p.env);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split("\n");
    expect(lines[0]!.startsWith(p.prefix), r.stderr).toBe(true);
    expect(lines[0]!.slice(p.prefix.length)).toMatch(line);
    expect(lines[1]).toBe("");
    expect(r.stderr).toMatch(p.usage);
    expect(r.stderr).not.toMatch(/Uncaught|\n\s+at /);
  });
});

describe("the CLI's flags", () => {
  const cli = (args: string[]) =>
    runProgram(["run", "--allow-net", "--allow-read", "--allow-env", "cli/main.ts", ...args], {
      FLEETSHIP_URL: "http://127.0.0.1:1",
      FLEETSHIP_TOKEN: "fst_x_y",
    });
  it.each([
    [
      "an unknown flag",
      ["machines", "--no-such-flag"],
      /^error usage: unknown option '--no-such-flag'$/,
    ],
    [
      "a flag without its value",
      ["machines", "--region"],
      /^error usage: option '--region <region>' argument missing$/,
    ],
    ["a value it cannot use", ["logs", "lots"], /^error usage: .*'lots'.*build/],
  ])("%s: one line naming it, where the usage is, exit 2", async (_what, args, line) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split("\n");
    expect(lines[0]).toMatch(line);
    expect(lines[1]).toBe("(run with --help for usage)");
  });
});
