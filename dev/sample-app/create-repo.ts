/**
 * Creates the sample application's git repository: the files of `src/` committed as v1, then
 * again with `version.h` saying v2, so the local stack and the tests can build and deploy one
 * version and then the other. Author, committer and dates are fixed, so the commit SHAs are the
 * same on every machine and every run.
 *
 *   deno run --allow-read --allow-write --allow-run dev/sample-app/create-repo.ts DIR
 *
 * prints `{"repoUrl": "file:///…", "commits": ["<v1 sha>", "<v2 sha>"]}`.
 */

const SRC = new URL("./src/", import.meta.url);

export interface SampleRepo {
  /** file:// URL of the repository. */
  repoUrl: string;
  /** Commit SHAs, oldest first: index 0 is v1, index 1 is v2. */
  commits: string[];
}

/** What each commit changes: `version.h`'s version and greeting. */
const VERSIONS = [1, 2] as const;

/** Commit dates one day apart from a fixed epoch, so SHAs are reproducible. */
const EPOCH_S = 1_767_225_600; // 2026-01-01T00:00:00Z

/**
 * Creates (or re-creates: an existing `dir` is emptied) the sample app's repository in `dir`
 * and returns its URL and commits.
 */
export async function createSampleRepo(dir: string): Promise<SampleRepo> {
  const path = absolute(dir);
  await Deno.remove(path, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await Deno.mkdir(path, { recursive: true });
  await git(path, ["init", "--quiet", "--initial-branch=main"]);
  await copySources(path);
  const commits: string[] = [];
  for (const [i, version] of VERSIONS.entries()) {
    await Deno.writeTextFile(`${path}/version.h`, versionHeader(version));
    await git(path, ["add", "--all"]);
    const date = `${EPOCH_S + i * 86_400} +0000`;
    await git(path, ["commit", "--quiet", "--no-gpg-sign", "-m", `sample-app v${version}`], {
      GIT_AUTHOR_DATE: date,
      GIT_COMMITTER_DATE: date,
    });
    commits.push((await git(path, ["rev-parse", "HEAD"])).trim());
  }
  return { repoUrl: new URL(`file://${path}`).href, commits };
}

function versionHeader(version: number): string {
  return [
    "/* The application's version; dev/sample-app/create-repo.ts commits v1, then v2. */",
    `#define SAMPLE_APP_VERSION ${version}`,
    `#define SAMPLE_APP_GREETING "Hello from sample-app v${version}"`,
    "",
  ].join("\n");
}

async function copySources(dest: string): Promise<void> {
  for await (const entry of Deno.readDir(SRC)) {
    if (!entry.isFile) continue;
    await Deno.copyFile(new URL(entry.name, SRC), `${dest}/${entry.name}`);
  }
}

function absolute(dir: string): string {
  if (dir.startsWith("/")) return dir.replace(/\/+$/, "") || "/";
  return `${Deno.cwd()}/${dir}`.replace(/\/+$/, "");
}

async function git(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_AUTHOR_NAME: "fleetship",
      GIT_AUTHOR_EMAIL: "sample-app@fleetship.invalid",
      GIT_COMMITTER_NAME: "fleetship",
      GIT_COMMITTER_EMAIL: "sample-app@fleetship.invalid",
      // The user's global config (hooks, signing, templates) must not change the commits.
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`git ${args.join(" ")} failed in ${cwd} (exit ${out.code}): ${stderr}`);
  }
  return new TextDecoder().decode(out.stdout);
}

if (import.meta.main) {
  const [dir, ...rest] = Deno.args;
  if (!dir || rest.length > 0) {
    console.error("usage: deno run -R -W --allow-run dev/sample-app/create-repo.ts DIR");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await createSampleRepo(dir)));
}
