import { ApiClient } from "./api.ts";
import {
  type ConfigSources,
  type ConnectionFlags,
  type LocalRole,
  resolveConnection,
} from "./config.ts";
import { colourEnabled, type Paint, paintWith } from "./format.ts";
import { type ProgressView, plainProgress, terminalProgress } from "./progress.ts";

/** The outside world a CLI run touches, passed in by `main.ts` (and by tests). */
export interface Deps extends ConfigSources {
  fetch: typeof fetch;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stdout is a terminal: colours and redrawn progress bars only then. */
  isTTY: boolean;
  /** The stream cli-progress draws on when stdout is a terminal. */
  terminal?: NodeJS.WritableStream | undefined;
  /** Registers what to undo on Ctrl-C (the hidden cursor); returns its unregistration. */
  onInterrupt?: ((cleanup: () => void) => () => void) | undefined;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** How often `--watch` polls the API. */
  pollMs: number;
  /** How long `--watch` keeps retrying while the control plane cannot be reached. */
  unreachableGraceMs: number;
}

/** What a command handler gets: output, the API, time, and its `--json` choice. */
export interface Context {
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  paint: Paint;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  pollMs: number;
  unreachableGraceMs: number;
  /** The API client, with the deployer's token by default (`admin` for `apps add`). */
  api: (role?: LocalRole) => Promise<ApiClient>;
  progress: () => ProgressView;
  /** Prints a value as the API's JSON. */
  printJson: (value: unknown) => void;
}

export function createContext(
  deps: Deps,
  flags: ConnectionFlags & { json?: boolean | undefined },
): Context {
  const paint = paintWith(colourEnabled(deps.isTTY, deps.env("NO_COLOR")));
  return {
    json: flags.json === true,
    out: deps.stdout,
    err: deps.stderr,
    paint,
    now: deps.now,
    sleep: deps.sleep,
    pollMs: deps.pollMs,
    unreachableGraceMs: deps.unreachableGraceMs,
    api: async (role = "deployer") =>
      new ApiClient(await resolveConnection(flags, role, deps), deps.fetch),
    progress: () =>
      deps.isTTY && deps.terminal
        ? terminalProgress(deps.terminal, deps.onInterrupt)
        : plainProgress(deps.stdout),
    printJson: (value) => deps.stdout(`${JSON.stringify(value, null, 2)}\n`),
  };
}
