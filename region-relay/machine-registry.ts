/**
 * The machines (agents) this relay knows and what each last reported per app. Kept in Deno KV
 * so a restarted relay reports its machines at once instead of dropping them from the region's
 * counts until they reconnect. A machine that disconnected is still reported for `graceMs`
 * (it is probably failing over to another relay of the region), then forgotten.
 */
import type { MachineReport } from "../protocol/machine-status.ts";
import type { Labels } from "../protocol/placement.ts";
import type { AppStatus } from "../protocol/relay-messages.ts";

export interface MachineRecord {
  machineId: string;
  apps: AppStatus[];
  connected: boolean;
  /** When it last sent anything, or disconnected. */
  lastSeen: number;
  peerUrl: string | null;
  /** What it said in hello (placements match them); records from before step 12 have none. */
  labels?: Labels;
}

export interface MachineStore {
  load(): Promise<MachineRecord[]>;
  put(record: MachineRecord): Promise<void>;
  delete(machineId: string): Promise<void>;
}

export interface MachineRegistryOptions {
  store: MachineStore;
  /** How long a disconnected machine is still reported. Default 60 s. */
  graceMs?: number;
  now?: () => number;
  /** Told after every change (the status uplink throttles). */
  onChange?: () => void;
}

export class MachineRegistry {
  readonly #o: MachineRegistryOptions;
  readonly #machines = new Map<string, MachineRecord>();
  /** Machines that said hello since the last `takeArrived()`, in order. */
  readonly #arrived = new Set<string>();

  constructor(options: MachineRegistryOptions) {
    this.#o = options;
  }

  /** Loads known machines; all count as disconnected until they say hello again. */
  async load(): Promise<number> {
    for (const record of await this.#o.store.load()) {
      this.#machines.set(record.machineId, { ...record, connected: false });
    }
    this.prune();
    return this.#machines.size;
  }

  get connectedCount(): number {
    let n = 0;
    for (const m of this.#machines.values()) if (m.connected) n++;
    return n;
  }

  /** Machines held, connected or within the grace period. */
  get size(): number {
    return this.#machines.size;
  }

  /** The connected machines and their labels (what a canary can be chosen from). */
  *connected(): Iterable<{ machine_id: string; labels: Labels }> {
    for (const m of this.#machines.values()) {
      if (m.connected) yield { machine_id: m.machineId, labels: m.labels ?? {} };
    }
  }

  get(machineId: string): MachineRecord | undefined {
    return this.#machines.get(machineId);
  }

  hello(machineId: string, apps: AppStatus[], peerUrl: string | null, labels: Labels = {}): void {
    this.#arrived.delete(machineId);
    this.#arrived.add(machineId);
    this.#put({ machineId, apps, connected: true, lastSeen: this.#now(), peerUrl, labels });
  }

  status(machineId: string, apps: AppStatus[]): void {
    const prior = this.#machines.get(machineId);
    this.#put({
      machineId,
      apps,
      connected: true,
      lastSeen: this.#now(),
      peerUrl: prior?.peerUrl ?? null,
      labels: prior?.labels ?? {},
    });
  }

  disconnected(machineId: string): void {
    const prior = this.#machines.get(machineId);
    if (prior) this.#put({ ...prior, connected: false, lastSeen: this.#now() });
  }

  /** Up to `max` machines that said hello since the last call (the rest stay for the next). */
  takeArrived(max: number): string[] {
    const out: string[] = [];
    for (const id of this.#arrived) {
      if (out.length >= max) break;
      out.push(id);
      this.#arrived.delete(id);
    }
    return out;
  }

  /**
   * Forgets these machines if they are away from this relay (another relay of the region has
   * them now); connected ones are kept. How many were forgotten.
   */
  forget(machineIds: Iterable<string>): number {
    let n = 0;
    for (const id of machineIds) {
      const m = this.#machines.get(id);
      if (!m || m.connected) continue;
      this.#machines.delete(id);
      void this.#o.store.delete(id).catch(() => {});
      n++;
    }
    if (n > 0) this.#o.onChange?.();
    return n;
  }

  /** Forgets machines disconnected for longer than the grace period. */
  prune(): void {
    const cutoff = this.#now() - (this.#o.graceMs ?? 60_000);
    for (const m of [...this.#machines.values()]) {
      if (!m.connected && m.lastSeen < cutoff) {
        this.#machines.delete(m.machineId);
        void this.#o.store.delete(m.machineId).catch(() => {});
        this.#o.onChange?.();
      }
    }
  }

  /** Every machine's apps as the `status` message lists them (docs/goal-state.md). */
  reports(): MachineReport[] {
    const out: MachineReport[] = [];
    for (const m of this.#machines.values()) {
      for (const a of m.apps) {
        out.push({
          machine_id: m.machineId,
          app: a.app,
          build_id: a.build_id,
          generation: a.generation,
          state: a.state,
          detail: detailOf(a),
          connected: m.connected,
          ...(a.restarts === undefined ? {} : { restarts: a.restarts }),
          ...(m.labels && Object.keys(m.labels).length > 0 ? { labels: m.labels } : {}),
        });
      }
    }
    return out;
  }

  #put(record: MachineRecord): void {
    this.#machines.set(record.machineId, record);
    void this.#o.store.put(record).catch(() => {});
    this.#o.onChange?.();
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}

/** The agent's own detail, or the download progress in words. */
export function detailOf(a: AppStatus): string | null {
  if (a.detail !== null) return a.detail;
  const p = a.progress;
  if (a.state !== "downloading" || p === null) return null;
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  return `${p.chunks_done}/${p.chunks_total} chunks, ${mib(p.bytes_done)}/${mib(p.bytes_total)} MiB`;
}

export function kvMachineStore(kv: Deno.Kv): MachineStore {
  return {
    async load() {
      const out: MachineRecord[] = [];
      for await (const item of kv.list<MachineRecord>({ prefix: ["machine"] }))
        out.push(item.value);
      return out;
    },
    async put(record) {
      await kv.set(["machine", record.machineId], record);
    },
    async delete(machineId) {
      await kv.delete(["machine", machineId]);
    },
  };
}

export function memoryMachineStore(): MachineStore & { map: Map<string, MachineRecord> } {
  const map = new Map<string, MachineRecord>();
  return {
    map,
    load: () => Promise.resolve([...map.values()]),
    put: (r) => {
      map.set(r.machineId, structuredClone(r));
      return Promise.resolve();
    },
    delete: (id) => {
      map.delete(id);
      return Promise.resolve();
    },
  };
}
