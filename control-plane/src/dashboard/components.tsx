import type { BuildView } from "../queue/build-view.ts";
import type { RegionReplication } from "../replication/status.ts";
import type { BuildData, DeploymentData, Overview } from "./data.ts";

export function ago(iso: string | null): string {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function took(from: string | null, to: string | null): string {
  if (!from) return "—";
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

export const Status = (p: { s: string }) => <span class={`status ${p.s}`}>{p.s}</span>;

export function Bar(p: { percent: number; kind?: "fail" | "busy" | undefined }) {
  const w = Math.max(0, Math.min(100, p.percent));
  return (
    <div class="bar" title={`${w}%`}>
      <span class={p.kind ?? ""} style={`width:${w}%`} />
    </div>
  );
}

export function BuildsTable(p: { builds: BuildView[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th>build</th>
          <th>app</th>
          <th>commit</th>
          <th>status</th>
          <th>attempt</th>
          <th>queued</th>
          <th>took</th>
          <th>reason</th>
        </tr>
      </thead>
      <tbody>
        {p.builds.map((b) => (
          <tr>
            <td>
              <a href={`/ui/builds/${b.id}`}>#{b.id}</a>
            </td>
            <td>{b.app}</td>
            <td>
              <code>{b.commit_sha.slice(0, 10)}</code>
            </td>
            <td>
              <Status s={b.status} />
            </td>
            <td>
              {b.attempt}/{b.max_attempts}
            </td>
            <td>{ago(b.created_at)}</td>
            <td>{took(b.started_at, b.finished_at)}</td>
            <td class="reason">{b.failure_reason ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DeploymentsTable(p: { deployments: Overview["deployments"] }) {
  return (
    <table>
      <thead>
        <tr>
          <th>deployment</th>
          <th>app</th>
          <th>build</th>
          <th>status</th>
          <th>started</th>
          <th>by</th>
          <th>reason / waiting</th>
        </tr>
      </thead>
      <tbody>
        {p.deployments.map((d) => (
          <tr>
            <td>
              <a href={`/ui/deployments/${d.id}`}>#{d.id}</a>
            </td>
            <td>{d.app}</td>
            <td>
              <a href={`/ui/builds/${d.build_id}`}>#{d.build_id}</a>
            </td>
            <td>
              <Status s={d.status} />
            </td>
            <td>{ago(d.created_at)}</td>
            <td class="dim">{d.created_by.replace(/ \(.*\)$/, "")}</td>
            <td class="reason">{d.reason ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function RegionsPanel(p: { regions: Overview["regions"] }) {
  return (
    <div class="grid">
      {p.regions.map((r) => (
        <div class="card">
          <div>
            <strong>{r.name}</strong> {r.primary ? <span class="dim">primary</span> : null}
          </div>
          <div class="n">
            {r.reachable}
            <span class="dim"> / {r.machines} machines</span>
          </div>
          <div class="dim">
            {r.relays.length} relay{r.relays.length === 1 ? "" : "s"}:{" "}
            {r.relays.map((x) => `${x.relay_id}${x.stale ? " (silent)" : ""}`).join(", ") || "none"}
          </div>
          {r.failed.length > 0 ? (
            <div class="fail" data-failed={r.name}>
              <strong>{r.failed.length} failed</strong>
              <ul>
                {r.failed.slice(0, 10).map((m) => (
                  <li data-machine={m.machine_id}>
                    {m.machine_id} {m.app}
                    {m.restarts > 0 ? ` (${m.restarts} restarts)` : ""}: {m.detail ?? "failed"}
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
        </div>
      ))}
    </div>
  );
}

export function ReplicationTable(p: { regions: RegionReplication[] }) {
  if (p.regions.length === 0)
    return <p class="dim">Not replicating (the build has not succeeded).</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>region</th>
          <th>status</th>
          <th>progress</th>
          <th>chunks</th>
          <th>bytes</th>
          <th>error</th>
        </tr>
      </thead>
      <tbody>
        {p.regions.map((r) => (
          <tr data-region={r.region}>
            <td>{r.region}</td>
            <td>
              <Status s={r.status} />
            </td>
            <td>
              <Bar
                percent={r.percent}
                kind={r.status === "FAILED" ? "fail" : r.status === "COMPLETE" ? undefined : "busy"}
              />
            </td>
            <td>
              {r.chunks_done}/{r.chunks_total}
            </td>
            <td>
              {mib(r.bytes_done)}/{mib(r.bytes_total)} MiB
            </td>
            <td class="reason">{r.error ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const mib = (n: number) => (n / 1048576).toFixed(1);

export function BuildHeader(p: { data: BuildData }) {
  const b = p.data.build;
  return (
    <div>
      <Status s={b.status} /> attempt {b.attempt}/{b.max_attempts} · queued {ago(b.created_at)} ·
      ran {took(b.started_at, b.finished_at)}
      {b.failure_reason ? (
        <div class="error">
          {b.failure_reason}: {b.failure_message}
        </div>
      ) : null}
      <div>
        deployable:{" "}
        <strong class={p.data.deployable ? "healthy" : "pending"}>
          {p.data.deployable ? "yes" : "no"}
        </strong>
      </div>
    </div>
  );
}

export function LogView(p: { lines: BuildData["lines"] }) {
  return (
    <pre class="log">
      {p.lines.length === 0
        ? "(no output yet)"
        : p.lines.map((l) => `[${l.attempt}] ${l.line}`).join("\n")}
    </pre>
  );
}

export function RolloutView(p: { data: DeploymentData }) {
  const d = p.data.deployment;
  return (
    <div>
      <div>
        <Status s={d.status} /> generation {d.generation ?? "—"} · build{" "}
        <a href={`/ui/builds/${d.build_id}`}>#{d.build_id}</a>
        {d.previous_build_id ? <> (was #{d.previous_build_id})</> : null} · started{" "}
        {ago(d.created_at)}
      </div>
      {d.waiting ? (
        <div class="waiting" data-waiting>
          {d.waiting}
        </div>
      ) : d.reason ? (
        <div class="reason">{d.reason}</div>
      ) : null}
      {p.data.progress.rollout && p.data.progress.rollout.waves.length > 1 ? (
        <p data-waves>
          waves:{" "}
          {p.data.progress.rollout.waves.map((w, k) => (
            <span>
              {k > 0 ? " → " : ""}
              {w.name}
              {w.percent !== null ? ` (${w.percent}%)` : ""} <Status s={w.status} />
            </span>
          ))}
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th>region</th>
            <th>healthy</th>
            <th>machines</th>
            <th>pending</th>
            <th>downloading</th>
            <th>installed</th>
            <th>failed</th>
            <th>unreachable</th>
            <th>waiting</th>
          </tr>
        </thead>
        <tbody>
          {p.data.progress.regions.map((r) => (
            <tr data-region={r.region}>
              <td>{r.region}</td>
              <td>
                <Bar
                  percent={r.machines === 0 ? 100 : (100 * r.counts.healthy) / r.machines}
                  kind={r.counts.failed > 0 ? "fail" : undefined}
                />
              </td>
              <td data-count="machines">{r.machines}</td>
              <td>{r.counts.pending}</td>
              <td>{r.counts.downloading}</td>
              <td>{r.counts.installed}</td>
              <td class={r.counts.failed ? "failed" : ""}>{r.counts.failed}</td>
              <td>{r.counts.unreachable}</td>
              <td class="reason">{r.waiting ?? (r.done ? "done" : "")}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
