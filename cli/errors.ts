/**
 * What a CLI run can end in. Scripts branch on the exit code, people read the message:
 * every failure is printed as `error <code>: <message>` on stderr.
 */
export const EXIT = {
  ok: 0,
  /** The thing watched failed (a build, its replication, a deployment), or an unexpected bug. */
  failed: 1,
  /** Bad arguments or missing configuration: nothing was sent. */
  usage: 2,
  /** The control plane answered with an error (`{error: {code, message}}`). */
  refused: 3,
  /** The control plane could not be reached (or did not answer in time). */
  unreachable: 4,
} as const;

export type ExitKind = Exclude<keyof typeof EXIT, "ok">;

/** The one error class commands throw; the program prints it and exits with its code. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: number;
  /** The HTTP status of an API refusal. */
  readonly status: number | undefined;
  readonly details: unknown;
  constructor(
    readonly kind: ExitKind,
    readonly code: string,
    message: string,
    options?: { cause?: unknown; status?: number; details?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = EXIT[kind];
    this.status = options?.status;
    this.details = options?.details;
  }
}

export const usageError = (message: string) => new CliError("usage", "usage", message);
