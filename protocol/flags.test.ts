import { describe, expect, it } from "vitest";
import { readFlags, usageError } from "./flags.ts";

const SPEC = {
  region: { type: "string" },
  relay: { type: "string", multiple: true },
  help: { type: "boolean" },
} as const;

describe("readFlags()", () => {
  it("reads --flag value, --flag=value and repeated flags", () => {
    expect(readFlags(["--region", "eu-west", "--relay=a", "--relay", "b", "--help"], SPEC)).toEqual(
      { values: { region: "eu-west", relay: ["a", "b"], help: true }, problems: [] },
    );
  });

  it("names the flag of every misuse instead of throwing", () => {
    const cases: [string[], string[]][] = [
      [["--bogus"], ["--bogus: unknown flag"]],
      [["-x"], ["-x: unknown flag"]],
      [["--region"], ["--region: needs a value"]],
      [["--region", "--help"], ["--region: needs a value, got the flag --help"]],
      [["--help=yes"], ['--help: takes no value, got "yes"']],
      [["--region", "a", "stray"], ['unexpected argument "stray"']],
    ];
    for (const [args, problems] of cases) {
      const r = readFlags(args, SPEC);
      expect(r.problems, args.join(" ")).toEqual(problems);
    }
  });

  it("keeps the good flags' values beside the problems", () => {
    const r = readFlags(["--region", "eu-west", "--nope"], SPEC);
    expect(r.values).toEqual({ region: "eu-west" });
    expect(r.problems).toEqual(["--nope: unknown flag"]);
  });
});

describe("usageError()", () => {
  it("prints one line per problem, prefixed by the program, then the usage", () => {
    expect(usageError("fleetship-agent", ["--x: unknown flag"], "usage: fleetship-agent")).toBe(
      "fleetship-agent: --x: unknown flag\n\nusage: fleetship-agent",
    );
  });
});
