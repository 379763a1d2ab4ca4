import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import { streamSSE } from "hono/streaming";
import type { App, AppEnv } from "../app-env.ts";
import { actorOf } from "../audit.ts";
import { authenticate, mayAct, requireSession, SESSION_COOKIE } from "../auth/tokens.ts";
import { createDeployment } from "../deployments/create.ts";
import { rollbackDeployment } from "../deployments/rollback.ts";
import { ApiError } from "../errors.ts";
import {
  BuildHeader,
  BuildsTable,
  DeploymentsTable,
  LogView,
  RegionsPanel,
  ReplicationTable,
  RolloutView,
} from "./components.tsx";
import { buildData, deploymentData, overviewData } from "./data.ts";
import { Layout } from "./layout.tsx";

/** How long one live stream runs before the browser's EventSource reconnects by itself. */
const LIVE_MS = 5 * 60_000;
const LIVE_TICK_MS = 1_000;

const idOf = (raw: string) => {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new ApiError(400, "invalid_input", `not an id: ${raw}`);
  return n;
};

const who = (c: { get(k: "principal"): { name: string; role: string } }) =>
  `${c.get("principal").name} (${c.get("principal").role})`;

export function registerDashboard(app: App): void {
  app.get("/", (c) => c.redirect("/ui", 302));

  app.get("/ui/login", (c) => {
    const next = c.req.query("next") ?? "/ui";
    return c.html(
      <Layout title="Sign in">
        <h1>Sign in</h1>
        {c.req.query("failed") ? <p class="error">That token was not accepted.</p> : null}
        {c.req.query("expired") ? (
          <p class="error">Your session's token is no longer valid.</p>
        ) : null}
        <form method="post" action="/ui/login">
          <input type="hidden" name="next" value={next.startsWith("/ui") ? next : "/ui"} />
          <p>
            <input
              name="token"
              type="password"
              placeholder="API token (fst_…)"
              autocomplete="off"
            />
          </p>
          <button type="submit">Sign in</button>
        </form>
        <p class="dim">
          Locally, <code>npm start</code> writes tokens to <code>.data/local.json</code>.
        </p>
      </Layout>,
    );
  });

  app.post("/ui/login", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const next = typeof form.next === "string" && form.next.startsWith("/ui") ? form.next : "/ui";
    try {
      await authenticate(c, token);
    } catch {
      return c.redirect(`/ui/login?failed=1&next=${encodeURIComponent(next)}`, 303);
    }
    setCookie(c, SESSION_COOKIE, token, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/ui",
      maxAge: 12 * 3600,
    });
    return c.redirect(next, 303);
  });

  app.post("/ui/logout", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/ui" });
    return c.redirect("/ui/login", 303);
  });

  app.get("/ui", requireSession("any"), async (c) => {
    const data = await overviewData(c.env, c.get("db"), c.get("config"));
    return c.html(
      <Layout title="Overview" who={who(c)} live="/ui/live/overview">
        <h1>Overview</h1>
        <h2 id="regions">Regions</h2>
        <div id="regions-panel">
          <RegionsPanel regions={data.regions} />
        </div>
        <h2 id="deployments">Deployments</h2>
        <div id="deployments-table">
          <DeploymentsTable deployments={data.deployments} />
        </div>
        <h2 id="builds">Builds</h2>
        <div id="builds-table">
          <BuildsTable builds={data.builds} />
        </div>
      </Layout>,
    );
  });

  app.get("/ui/builds/:id", requireSession("any"), async (c) => {
    const id = idOf(c.req.param("id"));
    const data = await buildData(c.get("db"), c.get("config"), id);
    if (!data)
      return c.html(
        <Layout title="Not found" who={who(c)}>
          <h1>Build #{id} does not exist</h1>
        </Layout>,
        404,
      );
    const canDeploy = mayAct(c.get("principal"), ["deployer", "admin"]);
    return c.html(
      <Layout title={`Build #${id}`} who={who(c)} live={`/ui/live/builds/${id}`}>
        <h1>
          Build #{id} · {data.build.app} @ <code>{data.build.commit_sha.slice(0, 12)}</code>
        </h1>
        <div id="build-header">
          <BuildHeader data={data} />
        </div>
        {canDeploy ? (
          <form method="post" action={`/ui/builds/${id}/deploy`}>
            <p>
              <button type="submit" id="deploy-button">
                Deploy #{id}
              </button>{" "}
              <span class="dim">(refused with the reason until the build is deployable)</span>
            </p>
          </form>
        ) : null}
        {c.req.query("error") ? <p class="error">{c.req.query("error")}</p> : null}
        <h2>Replication</h2>
        <div id="replication">
          <ReplicationTable regions={data.replication} />
        </div>
        <h2>Log</h2>
        <div id="log">
          <LogView lines={data.lines} />
        </div>
      </Layout>,
    );
  });

  app.post("/ui/builds/:id/deploy", requireSession("deployer", "admin"), async (c) => {
    const id = idOf(c.req.param("id"));
    const data = await buildData(c.get("db"), c.get("config"), id);
    if (!data) return c.redirect("/ui", 303);
    try {
      const row = await createDeployment(c.env, c.get("db"), c.get("config"), actorOf(c), {
        app: data.build.app,
        buildId: id,
        strategy: { type: "all-at-once" },
      });
      return c.redirect(`/ui/deployments/${row.id}`, 303);
    } catch (err) {
      if (err instanceof ApiError)
        return c.redirect(`/ui/builds/${id}?error=${encodeURIComponent(err.message)}`, 303);
      throw err;
    }
  });

  app.get("/ui/deployments/:id", requireSession("any"), async (c) => {
    const id = idOf(c.req.param("id"));
    const data = await deploymentData(c.env, c.get("db"), id);
    if (!data)
      return c.html(
        <Layout title="Not found" who={who(c)}>
          <h1>Deployment #{id} does not exist</h1>
        </Layout>,
        404,
      );
    const canAct = mayAct(c.get("principal"), ["deployer", "admin"]);
    return c.html(
      <Layout title={`Deployment #${id}`} who={who(c)} live={`/ui/live/deployments/${id}`}>
        <h1>
          Deployment #{id} · {data.deployment.app}
        </h1>
        <div id="rollout">
          <RolloutView data={data} />
        </div>
        {c.req.query("error") ? <p class="error">{c.req.query("error")}</p> : null}
        {canAct && data.deployment.previous_build_id ? (
          <form method="post" action={`/ui/deployments/${id}/rollback`}>
            <p>
              <button class="danger" type="submit" id="rollback-button">
                Roll back to #{data.deployment.previous_build_id}
              </button>
            </p>
          </form>
        ) : null}
      </Layout>,
    );
  });

  app.post("/ui/deployments/:id/rollback", requireSession("deployer", "admin"), async (c) => {
    const id = idOf(c.req.param("id"));
    try {
      const row = await rollbackDeployment(c.env, c.get("db"), c.get("config"), actorOf(c), id);
      return c.redirect(`/ui/deployments/${row.id}`, 303);
    } catch (err) {
      if (err instanceof ApiError)
        return c.redirect(`/ui/deployments/${id}?error=${encodeURIComponent(err.message)}`, 303);
      throw err;
    }
  });

  // Live fragments: the same components, re-rendered server-side and pushed while they change.
  const live = (path: string, render: (c: Context<AppEnv>) => Promise<Record<string, Child>>) =>
    app.get(path, requireSession("any"), (c) =>
      streamSSE(c, async (stream) => {
        const last = new Map<string, string>();
        const deadline = Date.now() + LIVE_MS;
        while (Date.now() < deadline && !stream.aborted) {
          for (const [id, node] of Object.entries(await render(c))) {
            const html = String(await node);
            if (last.get(id) !== html) {
              last.set(id, html);
              await stream.writeSSE({ event: "fragment", data: JSON.stringify({ id, html }) });
            }
          }
          await stream.sleep(LIVE_TICK_MS);
        }
      }),
    );

  live("/ui/live/overview", async (c) => {
    const data = await overviewData(c.env, c.get("db"), c.get("config"));
    return {
      "regions-panel": <RegionsPanel regions={data.regions} />,
      "deployments-table": <DeploymentsTable deployments={data.deployments} />,
      "builds-table": <BuildsTable builds={data.builds} />,
    };
  });

  live("/ui/live/builds/:id", async (c) => {
    const data = await buildData(c.get("db"), c.get("config"), idOf(c.req.param("id") ?? ""));
    if (!data) return {};
    return {
      "build-header": <BuildHeader data={data} />,
      replication: <ReplicationTable regions={data.replication} />,
      log: <LogView lines={data.lines} />,
    };
  });

  live("/ui/live/deployments/:id", async (c) => {
    const data = await deploymentData(c.env, c.get("db"), idOf(c.req.param("id") ?? ""));
    return data ? { rollout: <RolloutView data={data} /> } : {};
  });
}
