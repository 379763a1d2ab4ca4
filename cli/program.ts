import { Command, CommanderError, InvalidArgumentError } from "commander";
import { addApp, listApps } from "./commands/apps.ts";
import { build } from "./commands/build.ts";
import { control, deploy, rollback } from "./commands/deploy.ts";
import { logs } from "./commands/logs.ts";
import { machines } from "./commands/machines.ts";
import { status } from "./commands/status.ts";
import { type Context, createContext, type Deps } from "./context.ts";
import { CliError, EXIT } from "./errors.ts";

const HELP_AFTER = `
Connection: --url/--token, else FLEETSHIP_URL/FLEETSHIP_TOKEN, else the local stack's
.data/local.json (FLEETSHIP_DATA/local.json) written by \`npm start\`: its deployer token, and
its admin token for \`apps add\`.

Exit codes: 0 ok; 1 the build or deployment watched failed; 2 usage; 3 the API refused
(printed as "error <code>: <message>"); 4 the control plane cannot be reached; 130 Ctrl-C.`;

/** Parses and runs one command line; resolves to the process's exit code. */
export async function run(argv: string[], deps: Deps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync(argv, { from: "user" });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      deps.stderr(`error ${err.code}: ${err.message}\n`);
      return err.exitCode;
    }
    deps.stderr(
      `error internal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return EXIT.failed;
  }
}

export function buildProgram(deps: Deps): Command {
  const program = new Command("fleetship")
    .description("Build commits, replicate them to every region and deploy them to the fleet.")
    .option("--url <url>", "control plane URL (FLEETSHIP_URL)")
    .option("--token <token>", "API bearer token (FLEETSHIP_TOKEN)")
    .addHelpText("after", HELP_AFTER)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({
      writeOut: deps.stdout,
      writeErr: deps.stderr,
      outputError: (text, write) => write(text.replace(/^error: /, "error usage: ")),
    });
  // Every (sub)command: the same exit handling and output, and --json.
  const command = (parent: Command, spec: string, description: string) =>
    parent
      .command(spec)
      .description(description)
      .option("--json", "print the API's JSON (for scripts)")
      .exitOverride()
      .configureOutput(program.configureOutput());
  const ctx = (cmd: Command): Context => createContext(deps, cmd.optsWithGlobals());

  const apps = command(program, "apps", "list applications").action(async (_o, cmd: Command) => {
    await listApps(ctx(cmd));
  });
  command(apps, "add <name>", "register an application (admin token)")
    .requiredOption("--repo <url>", "git repository URL")
    .requiredOption("--build <cmd>", "build command, run in the checkout")
    .requiredOption("--artifact <path>", "the built binary, relative to the checkout")
    .requiredOption("--run <cmd>", "how to start it on a machine")
    .option("--health-http <port:path>", "HTTP health check, such as 8080:/healthz")
    .option("--health-cmd <cmd>", "command health check (exit 0 = healthy)")
    .option("--regions <a,b>", "regions to deploy to (default: all)")
    .option("--build-timeout <seconds>", "build timeout", positiveInt("--build-timeout"))
    .action(async (name: string, o, cmd: Command) => {
      await addApp(ctx(cmd), name, o);
    });

  command(program, "build <app> <sha>", "queue a build of a commit (idempotent per commit)")
    .option("--force", "build again even if that commit was built")
    .option("--watch", "follow it until deployable: build phase, then replication per region")
    .action(async (app: string, sha: string, o, cmd: Command) => {
      await build(ctx(cmd), app, sha, o);
    });

  command(program, "logs", "print a build's log (exit 1 if the build FAILED)")
    .argument("<build>", "build id", positiveInt("build"))
    .option("-f, --follow", "follow the log until the build ends")
    .action(async (id: number, o, cmd: Command) => {
      await logs(ctx(cmd), id, o);
    });

  command(program, "deploy", "deploy a deployable build to every region")
    .argument("<app>", "application name")
    .argument("<build>", "build id", positiveInt("build"))
    .option("--watch", "follow the rollout: a bar per region, until it succeeds or fails")
    .option(
      "--staged",
      "roll out region by region, each wave gated on health (default: all at once)",
    )
    .option(
      "--canary <percent>",
      "with --staged: a canary of this % of the first region's machines",
      positiveInt("--canary"),
    )
    .option(
      "--bake <seconds>",
      "with --staged: how long each wave must stay healthy (default 60)",
      positiveInt("--bake"),
    )
    .option("--regions <a,b>", "with --staged: the region order")
    .action(async (app: string, id: number, o, cmd: Command) => {
      await deploy(ctx(cmd), app, id, o);
    });

  for (const [verb, text] of [
    ["pause", "hold a rollout where it is"],
    ["resume", "let a paused rollout go on"],
    ["abort", "stop a rollout and revert the regions it changed"],
  ] as const) {
    command(program, verb, text)
      .argument("<deployment>", "deployment id", positiveInt("deployment"))
      .action(async (id: number, _o, cmd: Command) => {
        await control(ctx(cmd), verb, id);
      });
  }

  command(program, "rollback", "redeploy the build a deployment replaced")
    .argument("<deployment>", "deployment id", positiveInt("deployment"))
    .option("--watch", "follow the rollout, as deploy --watch")
    .action(async (id: number, o, cmd: Command) => {
      await rollback(ctx(cmd), id, o);
    });

  command(program, "status [app]", "current goal, latest deployments and builds").action(
    async (app: string | undefined, _o, cmd: Command) => {
      await status(ctx(cmd), app);
    },
  );

  command(program, "machines", "machines and what they run, as their relays report")
    .option("--region <region>", "only this region")
    .option("--app <app>", "only machines running this app")
    .option(
      "--state <state>",
      "only machines in this state (pending, downloading, installed, healthy, failed)",
    )
    .option("--cursor <cursor>", "the page after the one that printed this cursor")
    .option("--all", "every page, not only the first")
    .action(async (o, cmd: Command) => {
      await machines(ctx(cmd), o);
    });

  return program;
}

/** A commander argument parser for ids and counts: a positive integer or a usage error. */
export function positiveInt(what: string): (value: string) => number {
  return (value) => {
    if (!/^[1-9]\d{0,14}$/.test(value)) {
      throw new InvalidArgumentError(
        `${what} must be a positive integer, not ${JSON.stringify(value)}`,
      );
    }
    return Number(value);
  };
}
