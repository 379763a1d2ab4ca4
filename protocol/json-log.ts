/**
 * Structured logs for the Deno programs: one JSON object per line, `event` named `noun:verb`,
 * typed by each program's event map (the events it reports and the fields each carries).
 */

export type Level = "debug" | "info" | "warn" | "error";

export interface EventLogger<M> {
  log<E extends keyof M & string>(level: Level, event: E, fields: M[E]): void;
}

/** A logger writing JSON lines through `write` (stdout in each main.ts). Never throws. */
export function jsonLogger<M>(
  write: (line: string) => void,
  now: () => Date = () => new Date(),
): EventLogger<M> {
  return {
    log(level, event, fields) {
      try {
        write(JSON.stringify({ ts: now().toISOString(), level, event, ...fields }));
      } catch {
        // A log line must never take the program down.
      }
    },
  };
}

/** A logger that drops everything (tests). */
export function silentLogger<M>(): EventLogger<M> {
  return { log() {} };
}

/** The message of anything thrown, with its cause chain, for a log field. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  let cause = err.cause;
  for (let depth = 0; cause !== undefined && depth < 3; depth++) {
    text += `: ${cause instanceof Error ? cause.message : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}
