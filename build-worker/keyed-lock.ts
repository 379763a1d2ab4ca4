/** Runs tasks one at a time per key (e.g. git operations on one repository's mirror). */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.catch(() => {}).then(task);
    const tail = result.catch(() => {});
    this.#tails.set(key, tail);
    try {
      return await result;
    } finally {
      // The last task of a key leaves no entry behind.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
