// deno-lint-ignore-file require-await -- fakes and callbacks implement async contracts without awaiting
import assert from "node:assert/strict";
import {
  CommitNotFoundError,
  checkoutCommit,
  fetchCommit,
  type Git,
  gitCommand,
  mirrorPath,
} from "./git-checkout.ts";
import { KeyedLock } from "./keyed-lock.ts";

const env = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: "/nonexistent",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.invalid",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.invalid",
};
const git = gitCommand(env);

async function run(cwd: string, ...args: string[]): Promise<string> {
  const r = await git(args, { cwd });
  if (r.code !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A repository with v1 and v2 on main and a commit only a pull-request ref reaches. */
async function makeRepo(dir: string) {
  await run(dir, "init", "--quiet", "--initial-branch=main");
  await Deno.writeTextFile(`${dir}/file.txt`, "v1\n");
  await run(dir, "add", ".");
  await run(dir, "commit", "--quiet", "-m", "v1");
  const v1 = await run(dir, "rev-parse", "HEAD");
  await Deno.writeTextFile(`${dir}/file.txt`, "v2\n");
  await run(dir, "commit", "--quiet", "-am", "v2");
  const v2 = await run(dir, "rev-parse", "HEAD");
  await Deno.writeTextFile(`${dir}/file.txt`, "pr\n");
  await run(dir, "commit", "--quiet", "-am", "pr");
  const pr = await run(dir, "rev-parse", "HEAD");
  await run(dir, "update-ref", "refs/pull/1/head", pr);
  await run(dir, "reset", "--quiet", "--hard", v2);
  return { url: `file://${dir}`, v1, v2, pr };
}

/** git, counting the fetches it is asked for. */
function countingGit(): { git: Git; fetches: () => number } {
  let fetches = 0;
  return {
    git: (args, opts) => {
      if (args[0] === "fetch") fetches++;
      return git(args, opts);
    },
    fetches: () => fetches,
  };
}

Deno.test("fetchCommit() and checkoutCommit() check out exactly the commit asked for", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/repo`);
    const repo = await makeRepo(`${root}/repo`);
    const counting = countingGit();
    const notes: string[] = [];
    const deps = {
      workspace: `${root}/ws`,
      git: counting.git,
      lock: new KeyedLock(),
      note: async (line: string) => void notes.push(line),
      signal: new AbortController().signal,
    };
    const mirror = await fetchCommit(repo.url, repo.v1, deps);
    assert.equal(mirror, mirrorPath(`${root}/ws`, repo.url));
    assert.equal(counting.fetches(), 1);
    await checkoutCommit(mirror, repo.v1, `${root}/b1`, deps);
    assert.equal(await Deno.readTextFile(`${root}/b1/file.txt`), "v1\n");
    assert.equal(await run(`${root}/b1`, "rev-parse", "HEAD"), repo.v1);

    // Cached: no fetch for a commit the mirror already has.
    await fetchCommit(repo.url, repo.v2, deps);
    assert.equal(counting.fetches(), 1);
    assert.ok(notes.includes(`commit ${repo.v2} is in the cached mirror`));

    // On no branch or tag: fetched by its SHA.
    await fetchCommit(repo.url, repo.pr, deps);
    await checkoutCommit(mirror, repo.pr, `${root}/b2`, deps);
    assert.equal(await Deno.readTextFile(`${root}/b2/file.txt`), "pr\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("fetchCommit() says clearly when the repository lacks the commit", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/repo`);
    const repo = await makeRepo(`${root}/repo`);
    const sha = "1".repeat(40);
    const deps = {
      workspace: `${root}/ws`,
      git,
      lock: new KeyedLock(),
      note: async () => {},
      signal: new AbortController().signal,
    };
    await assert.rejects(
      fetchCommit(repo.url, sha, deps),
      (err) =>
        err instanceof CommitNotFoundError &&
        err.message === `commit ${sha} not found in ${repo.url}`,
    );
    // An unreachable repository is not a missing commit (it may be back later).
    await assert.rejects(
      fetchCommit(`file://${root}/nothing-here`, sha, deps),
      (err) => !(err instanceof CommitNotFoundError) && /git fetch .* failed/.test(String(err)),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
