/**
 * One app's releases on disk:
 *
 *   <state>/apps/<app>/releases/<build_id>/<app>            the artifact (mode 0755)
 *   <state>/apps/<app>/releases/<build_id>/manifest.json    the signed manifest it was checked against
 *   <state>/apps/<app>/releases/<build_id>/release.json     build, manifest digest, install/activation times
 *   <state>/apps/<app>/current -> releases/<build_id>       switched atomically (symlink, then rename)
 *
 * A release directory appears whole (assembled in a temporary directory, then renamed), so one
 * that exists is complete. The last few are kept so a rollback needs no download.
 */
import { type Manifest, parseManifest } from "../protocol/manifest.ts";

export interface ReleaseInfo {
  build_id: number;
  manifest_digest: string;
  installed_at: number;
  activated_at: number | null;
}

export class Releases {
  constructor(
    readonly root: string,
    readonly app: string,
  ) {}

  dir(buildId: number): string {
    return `${this.root}/releases/${buildId}`;
  }

  /** Where the artifact of `buildId` lives once installed. */
  artifact(buildId: number): string {
    return `${this.dir(buildId)}/${this.app}`;
  }

  async init(): Promise<void> {
    await Deno.mkdir(`${this.root}/releases`, { recursive: true });
    for await (const e of Deno.readDir(`${this.root}/releases`)) {
      if (e.name.startsWith(".tmp-"))
        await Deno.remove(`${this.root}/releases/${e.name}`, { recursive: true });
    }
  }

  async info(buildId: number): Promise<ReleaseInfo | null> {
    try {
      return JSON.parse(
        await Deno.readTextFile(`${this.dir(buildId)}/release.json`),
      ) as ReleaseInfo;
    } catch {
      return null;
    }
  }

  /** True when `buildId` is installed from the manifest with `manifestDigest`. */
  async has(buildId: number, manifestDigest: string): Promise<boolean> {
    return (await this.info(buildId))?.manifest_digest === manifestDigest;
  }

  /** Moves the assembled file into a new release directory (replacing a stale one). */
  async install(
    buildId: number,
    o: { partial: string; manifestText: string; manifestDigest: string },
  ): Promise<void> {
    const tmp = `${this.root}/releases/.tmp-${buildId}-${crypto.randomUUID()}`;
    await Deno.mkdir(tmp, { recursive: true });
    await Deno.rename(o.partial, `${tmp}/${this.app}`);
    await Deno.chmod(`${tmp}/${this.app}`, 0o755);
    await Deno.writeTextFile(`${tmp}/manifest.json`, o.manifestText);
    const info: ReleaseInfo = {
      build_id: buildId,
      manifest_digest: o.manifestDigest,
      installed_at: Date.now(),
      activated_at: null,
    };
    await Deno.writeTextFile(`${tmp}/release.json`, JSON.stringify(info));
    await Deno.remove(this.dir(buildId), { recursive: true }).catch(() => {});
    await Deno.rename(tmp, this.dir(buildId));
  }

  /** The build `current` points at, or null. */
  async current(): Promise<number | null> {
    try {
      const target = await Deno.readLink(`${this.root}/current`);
      const id = Number(/releases\/(\d+)$/.exec(target)?.[1]);
      return Number.isSafeInteger(id) && id > 0 ? id : null;
    } catch {
      return null;
    }
  }

  /** Points `current` at `buildId` atomically: a new symlink renamed over the old one. */
  async switchTo(buildId: number): Promise<void> {
    const tmp = `${this.root}/.current-${crypto.randomUUID()}`;
    await Deno.symlink(`releases/${buildId}`, tmp);
    await Deno.rename(tmp, `${this.root}/current`);
    const info = await this.info(buildId);
    if (info) {
      info.activated_at = Date.now();
      await Deno.writeTextFile(`${this.dir(buildId)}/release.json`, JSON.stringify(info));
    }
  }

  async list(): Promise<ReleaseInfo[]> {
    const out: ReleaseInfo[] = [];
    for await (const e of Deno.readDir(`${this.root}/releases`)) {
      if (!e.isDirectory || !/^\d+$/.test(e.name)) continue;
      const info = await this.info(Number(e.name));
      if (info) out.push(info);
    }
    return out;
  }

  /** Each kept release's file and manifest, for reusing chunks. */
  async files(): Promise<{ file: string; manifest: Manifest }[]> {
    const out: { file: string; manifest: Manifest }[] = [];
    for (const r of await this.list()) {
      try {
        const body = JSON.parse(await Deno.readTextFile(`${this.dir(r.build_id)}/manifest.json`));
        out.push({ file: this.artifact(r.build_id), manifest: parseManifest(body.manifest) });
      } catch {
        // unreadable: it simply offers no chunks
      }
    }
    return out;
  }

  /**
   * Keeps the `keep` most recently used releases (activated, else installed) and every build in
   * `protect` (the running one, the one being installed); deletes the rest. Returns what went.
   */
  async prune(keep: number, protect: readonly number[]): Promise<number[]> {
    const byUse = (await this.list()).sort(
      (a, b) => (b.activated_at ?? b.installed_at) - (a.activated_at ?? a.installed_at),
    );
    const kept = new Set(protect);
    for (const r of byUse) if (kept.size < keep) kept.add(r.build_id);
    const removed: number[] = [];
    for (const r of byUse) {
      if (kept.has(r.build_id)) continue;
      await Deno.remove(this.dir(r.build_id), { recursive: true });
      removed.push(r.build_id);
    }
    return removed;
  }
}
