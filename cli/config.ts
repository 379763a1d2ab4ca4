import type { Connection } from "./api.ts";
import { usageError } from "./errors.ts";

/** The tokens `npm start` writes to `.data/local.json`. */
export type LocalRole = "admin" | "deployer" | "builder";

export interface ConnectionFlags {
  url?: string | undefined;
  token?: string | undefined;
}

export interface ConfigSources {
  env: (name: string) => string | undefined;
  readTextFile: (path: string) => Promise<string>;
  /** `.data/local.json` of the checkout (used when FLEETSHIP_DATA is unset). */
  defaultLocalFile: string;
}

/** Where the local stack's file is: `$FLEETSHIP_DATA/local.json` (as `npm start`), or the default. */
export function localFilePath(src: ConfigSources): string {
  const data = src.env("FLEETSHIP_DATA");
  return data ? `${data.replace(/\/+$/, "")}/local.json` : src.defaultLocalFile;
}

/**
 * The control plane to talk to and the token to send, each from the first of: the flag
 * (`--url`, `--token`), the environment (`FLEETSHIP_URL`, `FLEETSHIP_TOKEN`), then the local
 * stack's `.data/local.json` (its `control_plane_url`, and the token of `role`). The file is
 * read only when a flag and variable are missing; all problems are reported together.
 */
export async function resolveConnection(
  flags: ConnectionFlags,
  role: LocalRole,
  src: ConfigSources,
): Promise<Connection> {
  let url = flags.url ?? src.env("FLEETSHIP_URL");
  let token = flags.token ?? src.env("FLEETSHIP_TOKEN");
  const problems: string[] = [];
  if (!url || !token) {
    const path = localFilePath(src);
    const local = await readLocal(path, src).catch((err: Error) => {
      problems.push(err.message);
      return undefined;
    });
    url ||= local?.control_plane_url;
    token ||= local?.tokens?.[role];
    if (local && !url) problems.push(`${path} has no control_plane_url`);
    if (local && !token) problems.push(`${path} has no ${role} token`);
  }
  if (url && !/^https?:\/\/[^\s/]+/.test(url)) {
    problems.push(`the control plane URL must be http:// or https://, not ${JSON.stringify(url)}`);
  }
  if (problems.length > 0 || !url || !token) {
    throw usageError(
      [
        ...problems,
        "pass --url and --token (or set FLEETSHIP_URL and FLEETSHIP_TOKEN), or run `npm start`, which writes .data/local.json",
      ].join("; "),
    );
  }
  return { url: url.replace(/\/+$/, ""), token };
}

interface LocalFile {
  control_plane_url?: string;
  tokens?: Partial<Record<LocalRole, string>>;
}

async function readLocal(path: string, src: ConfigSources): Promise<LocalFile> {
  let text: string;
  try {
    text = await src.readTextFile(path);
  } catch (err) {
    const missing =
      err instanceof Error && (err.name === "NotFound" || /no such file/i.test(err.message));
    throw new Error(missing ? `${path} does not exist` : `cannot read ${path}: ${String(err)}`, {
      cause: err,
    });
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null) throw new TypeError("not an object");
    return parsed as LocalFile;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${String(err)})`, { cause: err });
  }
}
