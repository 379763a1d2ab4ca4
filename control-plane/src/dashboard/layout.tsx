import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import { LIVE_SCRIPT } from "./live-script.ts";

const CSS = `
:root { --bg:#0f1217; --panel:#171b22; --line:#262c36; --text:#e6e9ef; --dim:#8b93a1; --ok:#3fb950; --bad:#f85149; --warn:#d29922; --run:#58a6ff; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
header { display:flex; gap:24px; align-items:center; padding:12px 24px; border-bottom:1px solid var(--line); background: var(--panel); }
header a { color: var(--text); text-decoration:none; } header .brand { font-weight:700; letter-spacing:.02em; }
header .who { margin-left:auto; color: var(--dim); }
main { padding: 20px 24px; max-width: 1200px; }
h1 { font-size: 20px; margin: 0 0 16px; } h2 { font-size: 15px; margin: 24px 0 8px; color: var(--dim); text-transform: uppercase; letter-spacing: .06em; }
table { width:100%; border-collapse: collapse; background: var(--panel); border:1px solid var(--line); border-radius:6px; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); white-space: nowrap; }
th { color: var(--dim); font-weight:500; font-size: 12px; }
a { color: var(--run); text-decoration:none; }
.status { font-weight:600; font-size:12px; padding:2px 7px; border-radius:10px; border:1px solid currentColor; }
.SUCCEEDED,.COMPLETE,.healthy { color: var(--ok); } .FAILED,.failed,.ABORTED,.ROLLED_BACK { color: var(--bad); }
.RUNNING,.ROLLING,.COPYING,.downloading,.rolling,.baking { color: var(--run); } .passed { color: var(--ok); } .QUEUED,.PENDING,.pending,.SUPERSEDED { color: var(--dim); }
.bar { position:relative; height: 10px; background: var(--line); border-radius: 5px; overflow:hidden; min-width: 160px; }
.bar > span { position:absolute; top:0; bottom:0; left:0; background: var(--ok); }
.bar > span.fail { background: var(--bad); } .bar > span.busy { background: var(--run); }
.waiting { margin: 12px 0; padding: 10px 12px; border-left: 3px solid var(--warn); background: var(--panel); }
.reason { color: var(--dim); }
pre.log { background:#0b0d11; border:1px solid var(--line); padding:12px; max-height: 480px; overflow:auto; font: 12px/1.4 ui-monospace, monospace; }
form.inline { display:inline; } button { background: var(--run); color:#fff; border:0; padding:6px 12px; border-radius:5px; cursor:pointer; }
button.danger { background: var(--bad); } input { background: var(--bg); color: var(--text); border:1px solid var(--line); padding:7px; border-radius:5px; width: 420px; }
.grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px; }
.card { background: var(--panel); border:1px solid var(--line); border-radius:6px; padding: 12px; }
.card .n { font-size: 22px; font-weight: 700; } .dim { color: var(--dim); }
.error { color: var(--bad); margin: 8px 0; }
.card .fail { color: var(--bad); margin-top: 8px; } .card .fail ul { margin: 4px 0 0; padding-left: 16px; font-size: 12px; }
`;

export function Layout(props: { title: string; who?: string; live?: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title} · fleetship</title>
        <style>{raw(CSS)}</style>
      </head>
      <body data-live={props.live ?? ""}>
        <header>
          <a class="brand" href="/ui">
            fleetship
          </a>
          <a href="/ui">Overview</a>
          <a href="/ui#builds">Builds</a>
          <a href="/ui#deployments">Deployments</a>
          <a href="/ui#regions">Regions</a>
          <a href="/docs">API</a>
          {props.who ? (
            <span class="who">
              {props.who}{" "}
              <form class="inline" method="post" action="/ui/logout">
                <button type="submit">Sign out</button>
              </form>
            </span>
          ) : null}
        </header>
        <main>{props.children}</main>
        {props.live ? <script>{raw(LIVE_SCRIPT)}</script> : null}
      </body>
    </html>
  );
}
