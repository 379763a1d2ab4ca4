/**
 * Fetching a commit and checking it out. Each repository has a cached bare mirror under
 * `<workspace>/repos/<sha256(repo_url)>` (its branches and tags, updated with `git fetch`; a
 * commit no ref reaches is fetched by SHA and kept under `refs/fleetship/<sha>`); each build
 * attempt gets a fresh `git clone --shared` of it (objects borrowed, not copied) with exactly
 * that commit checked out.
 */
import { createHash } from "node:crypto";
import type { KeyedLock } from "./keyed-lock.ts";

/** The repository does not have the commit (a build error: retrying will not help). */
export class CommitNotFoundError extends Error {
  override readonly name = "CommitNotFoundError";
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs git with `args`; never throws for a non-zero exit. */
export type Git = (
  args: readonly string[],
  opts?: { cwd?: string; signal?: AbortSignal },
) => Promise<GitResult>;

/** git as a child process, with `env` as its whole environment, never prompting for a password. */
export function gitCommand(env: Record<string, string>): Git {
  return async (args, opts = {}) => {
    const out = await new Deno.Command("git", {
      args: [...args],
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      env: { ...env, GIT_TERMINAL_PROMPT: "0" },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    opts.signal?.throwIfAborted();
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  };
}

export interface CheckoutDeps {
  workspace: string;
  git: Git;
  /** Serializes fetches into one mirror (the worker's slots share mirrors). */
  lock: KeyedLock;
}

/** Where `repoUrl`'s mirror lives. */
export function mirrorPath(workspace: string, repoUrl: string): string {
  return `${workspace}/repos/${createHash("sha256").update(repoUrl).digest("hex")}`;
}

/**
 * Makes sure the mirror of `repoUrl` holds commit `sha`, fetching only when it does not yet.
 * Throws CommitNotFoundError when the repository (reachable) does not have it, and a plain
 * Error when it cannot be reached. `note` receives progress lines for the build log.
 */
export async function fetchCommit(
  repoUrl: string,
  sha: string,
  deps: CheckoutDeps & { note: (line: string) => Promise<void>; signal: AbortSignal },
): Promise<string> {
  const { git, signal } = deps;
  const mirror = mirrorPath(deps.workspace, repoUrl);
  return await deps.lock.run(mirror, async () => {
    await ensureMirror(mirror, repoUrl, git, signal);
    if (await hasCommit(git, mirror, sha, signal)) {
      await deps.note(`commit ${sha} is in the cached mirror`);
      return mirror;
    }
    await deps.note(`fetching ${repoUrl}`);
    const fetched = await git(["fetch", "--prune", "--quiet", "origin"], { cwd: mirror, signal });
    if (fetched.code !== 0) {
      throw new Error(
        `git fetch ${repoUrl} failed (exit ${fetched.code}): ${tail(fetched.stderr)}`,
      );
    }
    if (await hasCommit(git, mirror, sha, signal)) return mirror;
    // Not reachable from a branch or tag: ask for the SHA itself (servers may refuse that).
    await deps.note(`commit ${sha} is on no branch or tag; fetching it by SHA`);
    await git(["fetch", "--quiet", "origin", `${sha}:refs/fleetship/${sha}`], {
      cwd: mirror,
      signal,
    });
    if (await hasCommit(git, mirror, sha, signal)) return mirror;
    throw new CommitNotFoundError(`commit ${sha} not found in ${repoUrl}`);
  });
}

/** A fresh checkout of exactly `sha` from `mirror` in `dir` (which must not exist). */
export async function checkoutCommit(
  mirror: string,
  sha: string,
  dir: string,
  deps: { git: Git; signal: AbortSignal },
): Promise<void> {
  const { git, signal } = deps;
  const clone = await git(["clone", "--quiet", "--shared", "--no-checkout", mirror, dir], {
    signal,
  });
  if (clone.code !== 0) throw new Error(`git clone of the mirror failed: ${tail(clone.stderr)}`);
  const checkout = await git(
    ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha],
    { cwd: dir, signal },
  );
  if (checkout.code !== 0) {
    throw new Error(`git checkout ${sha} failed: ${tail(checkout.stderr)}`);
  }
}

async function ensureMirror(mirror: string, repoUrl: string, git: Git, signal: AbortSignal) {
  try {
    await Deno.stat(mirror);
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  // Built aside and renamed into place, so a half-made mirror is never taken for a real one.
  const staging = `${mirror}.tmp-${crypto.randomUUID()}`;
  try {
    for (const args of [
      ["init", "--quiet", "--bare", staging],
      ["-C", staging, "config", "remote.origin.url", repoUrl],
      ["-C", staging, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"],
      ["-C", staging, "config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*"],
    ]) {
      const r = await git(args, { signal });
      if (r.code !== 0) throw new Error(`git ${args[0]} failed: ${tail(r.stderr)}`);
    }
    await Deno.rename(staging, mirror);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

async function hasCommit(git: Git, mirror: string, sha: string, signal: AbortSignal) {
  const r = await git(["cat-file", "-e", `${sha}^{commit}`], { cwd: mirror, signal });
  return r.code === 0;
}

/** The end of a command's stderr, for an error message. */
const tail = (text: string) => text.trim().split("\n").slice(-5).join(" | ").slice(0, 1000);
