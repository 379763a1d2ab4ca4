/**
 * Command-line flags for every fleetship program (agent, relay, build worker, local libSQL
 * server, `npm start`), read the same way: `node:util`'s parseArgs splits the arguments
 * (`--flag value`, `--flag=value`, `--`), and every misuse becomes a problem naming the flag,
 * never a stack trace: an unknown flag, a flag without its value, a value given to a switch, a
 * stray argument. Each program's config adds the problems of bad values and throws one
 * ConfigError; its main prints `usageError()` and exits 2. `node:util` is a built-in of Deno,
 * Node and workerd alike, so this file stays runtime-neutral.
 */
import { parseArgs } from "node:util";

export type FlagSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

type Values<S extends FlagSpec> = {
  [K in keyof S]?: S[K]["type"] extends "boolean"
    ? boolean
    : S[K]["multiple"] extends true
      ? string[]
      : string;
};

/** A configuration that cannot be used, with every problem found (each names its flag). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n- ${problems.join("\n- ")}`);
  }
}

/**
 * The flags of `args` by `spec`, and what is wrong with them. Values of known flags are kept
 * even when other flags are wrong, so a config can report its value problems in the same go.
 */
export function readFlags<S extends FlagSpec>(
  args: readonly string[],
  spec: S,
): { values: Values<S>; problems: string[] } {
  const { values, positionals, tokens } = parseArgs({
    args: [...args],
    options: spec,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const problems: string[] = [];
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const flag = spec[token.name];
    if (!flag) problems.push(`${token.rawName}: unknown flag`);
    else if (flag.type === "string" && token.value === undefined)
      problems.push(`${token.rawName}: needs a value`);
    else if (flag.type === "string" && !token.inlineValue && token.value?.startsWith("--")) {
      // `--region --relay x`: parseArgs would take "--relay" as the region.
      problems.push(`${token.rawName}: needs a value, got the flag ${token.value}`);
      delete (values as Record<string, unknown>)[token.name];
    } else if (flag.type === "boolean" && token.value !== undefined)
      problems.push(`${token.rawName}: takes no value, got ${JSON.stringify(token.value)}`);
  }
  for (const p of positionals) problems.push(`unexpected argument ${JSON.stringify(p)}`);
  const known: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    const flag = spec[name];
    if (!flag) continue;
    // parseArgs (strict: false) stores a valueless string flag as `true`: it is a problem above.
    if (flag.type === "string") {
      const strings = (Array.isArray(value) ? value : [value]).filter(
        (v): v is string => typeof v === "string",
      );
      if (strings.length > 0) known[name] = flag.multiple ? strings : strings.at(-1);
    } else if (typeof value === "boolean") {
      known[name] = value;
    }
  }
  return { values: known as Values<S>, problems };
}

/** What a program prints on stderr for bad flags: one line per problem, then its usage. */
export function usageError(program: string, problems: readonly string[], usage: string): string {
  return `${problems.map((p) => `${program}: ${p}`).join("\n")}\n\n${usage}`;
}
