/** The relay's counters and gauges, rendered as Prometheus text (exposition format 0.0.4). */

const DEFINITIONS = {
  relay_chunks_served_total: ["counter", "Chunks sent to agents"],
  relay_chunk_bytes_served_total: ["counter", "Chunk bytes sent to agents"],
  relay_chunks_busy_total: [
    "counter",
    "Chunk asks of mesh agents refused (relay_busy) because every fallback slot was serving",
  ],
  relay_upstream_reads_total: [
    "counter",
    "Chunks read from the regional bucket through the control plane",
  ],
  relay_upstream_bytes_total: ["counter", "Chunk bytes read from the regional bucket"],
  relay_upstream_read_failures_total: ["counter", "Chunk reads from the control plane that failed"],
  relay_cache_evictions_total: ["counter", "Chunks evicted from the cache"],
  relay_manifests_served_total: ["counter", "Manifests sent to agents"],
  relay_goal_pushes_total: ["counter", "Goal frames sent to agents"],
  relay_agents_refused_total: ["counter", "Agent connections or requests refused"],
  relay_have_reports_total: ["counter", "Agents' have reports taken by the tracker"],
  relay_have_invalid_total: ["counter", "Agents' have reports refused as malformed"],
  relay_peer_lists_sent_total: ["counter", "Peer lists sent to agents"],
  relay_peer_bad_reports_total: ["counter", "Agents' reports of a peer that sent wrong bytes"],
  relay_cache_bytes: ["gauge", "Bytes of chunks in the cache"],
  relay_cache_entries: ["gauge", "Chunks in the cache"],
  relay_cache_max_bytes: ["gauge", "The cache budget"],
  relay_agents_connected: ["gauge", "Agents connected now"],
  relay_goal_version: ["gauge", "The region's goal version this relay holds"],
  relay_upstream_connected: ["gauge", "1 while the goal subscription socket is open"],
  relay_status_message_bytes: ["gauge", "Bytes of the last status message sent upstream"],
  relay_status_message_bytes_max: ["gauge", "Bytes of the largest status message sent upstream"],
  relay_status_messages_total: ["counter", "Status messages sent upstream"],
  relay_status_bytes_total: ["counter", "Bytes of status messages sent upstream"],
} as const;

export type MetricName = keyof typeof DEFINITIONS;

export class Metrics {
  readonly #values = new Map<MetricName, number>();
  readonly #gauges = new Map<MetricName, () => number>();

  inc(name: MetricName, by = 1): void {
    this.#values.set(name, (this.#values.get(name) ?? 0) + by);
  }

  set(name: MetricName, value: number): void {
    this.#values.set(name, value);
  }

  /** A gauge read when rendered. */
  gauge(name: MetricName, read: () => number): void {
    this.#gauges.set(name, read);
  }

  get(name: MetricName): number {
    return this.#gauges.get(name)?.() ?? this.#values.get(name) ?? 0;
  }

  render(labels: Record<string, string>): string {
    const labelText = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`)
      .join(",");
    const lines: string[] = [];
    for (const [name, [type, help]] of Object.entries(DEFINITIONS)) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      lines.push(`${name}{${labelText}} ${this.get(name as MetricName)}`);
    }
    return `${lines.join("\n")}\n`;
  }
}
