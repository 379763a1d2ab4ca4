/**
 * The region's signed goals as the relay last received them, kept on disk so a restarted relay
 * can serve its agents even while the control plane is unreachable (agents check expiry and
 * generation themselves; the relay passes the documents on verbatim and never verifies them).
 */
import type { SignedGoal } from "../protocol/relay-messages.ts";

export interface GoalSnapshot {
  readonly version: number;
  readonly goals: readonly SignedGoal[];
}

/** Where snapshots persist: a file in main.ts, memory in tests. */
export interface SnapshotFile {
  read(): Promise<string | null>;
  write(text: string): Promise<void>;
}

export class GoalStore {
  #current: GoalSnapshot = { version: 0, goals: [] };
  #known = false;
  readonly #listeners = new Set<(snapshot: GoalSnapshot) => void>();

  constructor(private readonly file: SnapshotFile) {}

  /** Loads the last persisted snapshot; true when there was one. */
  async load(): Promise<boolean> {
    const text = await this.file.read();
    if (text === null) return false;
    try {
      const value = JSON.parse(text) as GoalSnapshot;
      if (!Number.isSafeInteger(value.version) || !Array.isArray(value.goals)) return false;
      this.#current = value;
      this.#known = true;
      return true;
    } catch {
      return false;
    }
  }

  get current(): GoalSnapshot {
    return this.#current;
  }

  /** Whether any snapshot (from upstream or disk) is held: before that agents get no goals. */
  get known(): boolean {
    return this.#known;
  }

  /**
   * Takes `next` from upstream when it differs (another version, or re-signed documents under
   * the same version). The control plane is the authority: a lower version (a rebuilt control
   * plane) is taken too; agents refuse stale generations themselves. True when it changed.
   */
  async update(next: GoalSnapshot): Promise<boolean> {
    if (this.#known && sameSnapshot(this.#current, next)) return false;
    const snapshot = { version: next.version, goals: [...next.goals] };
    await this.file.write(JSON.stringify(snapshot));
    // Taken and announced in one step: an agent saying hello meanwhile gets it exactly once.
    this.#current = snapshot;
    this.#known = true;
    for (const listener of this.#listeners) {
      try {
        listener(this.#current);
      } catch {
        // one listener's failure does not stop the others
      }
    }
    return true;
  }

  onChange(listener: (snapshot: GoalSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function sameSnapshot(a: GoalSnapshot, b: GoalSnapshot): boolean {
  if (a.version !== b.version || a.goals.length !== b.goals.length) return false;
  const key = (g: SignedGoal) => `${g.signature}\n${g.document}`;
  const left = new Set(a.goals.map(key));
  return b.goals.every((g) => left.has(key(g)));
}

/** A snapshot file written atomically (temporary file, then rename). */
export function diskSnapshotFile(path: string): SnapshotFile {
  return {
    async read() {
      try {
        return await Deno.readTextFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return null;
        throw err;
      }
    },
    async write(text) {
      const tmp = `${path}.tmp-${crypto.randomUUID()}`;
      await Deno.writeTextFile(tmp, text);
      await Deno.rename(tmp, path);
    },
  };
}

export function memorySnapshotFile(
  initial: string | null = null,
): SnapshotFile & { text: string | null } {
  const file = {
    text: initial,
    read: () => Promise.resolve(file.text),
    write: (text: string) => {
      file.text = text;
      return Promise.resolve();
    },
  };
  return file;
}
