/** How a build attempt ends, and how whatever was thrown maps to what the API is told. */
import { ManifestError } from "../protocol/index.ts";
import { ApiError, type FailReason, isLeaseRefusal } from "./api.ts";
import { ArtifactChangedError } from "./artifact-upload.ts";
import { CommitNotFoundError } from "./git-checkout.ts";
import { errorText } from "./log.ts";

/** Why an attempt was stopped from outside its own steps. */
export type StopReason =
  /** The control plane refused the lease (409): kill at once, send nothing more. */
  | { kind: "lease"; code: string; message: string }
  /** The build ran past its timeout_ms. */
  | { kind: "timeout"; timeoutMs: number }
  /** The worker is shutting down and its grace period is over. */
  | { kind: "shutdown" };

/** The abort reason of an attempt's signal. */
export class AttemptStopped extends Error {
  override readonly name = "AttemptStopped";
  constructor(readonly stop: StopReason) {
    super(`attempt stopped: ${stop.kind}`);
  }
}

/** A failure of the build itself (final: another attempt would fail the same way). */
export class BuildFailure extends Error {
  override readonly name = "BuildFailure";
  constructor(
    readonly reason: "build_error" | "invalid_artifact",
    message: string,
  ) {
    super(message);
  }
}

export type Outcome =
  | { kind: "succeeded" }
  /** Report `fail {reason, message}`. */
  | { kind: "failed"; reason: FailReason; message: string }
  /** Report nothing: the attempt is no longer ours. */
  | { kind: "abandoned"; code: string; message: string };

/** The API's limit on a failure message. */
const MAX_MESSAGE = 4000;

/** What to report for `err`, thrown by an attempt whose signal is `signal`. */
export function outcomeOf(err: unknown, signal: AbortSignal): Outcome {
  // Once stopped, whatever the steps threw since (aborted fetches, killed git) is a symptom.
  const cause = signal.aborted ? signal.reason : err;
  if (cause instanceof AttemptStopped) return outcomeOfStop(cause.stop);
  if (isLeaseRefusal(cause)) return { kind: "abandoned", code: cause.code, message: cause.message };
  if (cause instanceof BuildFailure) return failed(cause.reason, cause.message);
  if (cause instanceof CommitNotFoundError) return failed("build_error", cause.message);
  if (cause instanceof ManifestError) {
    return failed("invalid_artifact", `the artifact cannot be described: ${cause.message}`);
  }
  if (cause instanceof ApiError && cause.status === 413) {
    return failed("invalid_artifact", `the control plane refused the artifact: ${cause.message}`);
  }
  if (cause instanceof ArtifactChangedError) return failed("infrastructure", cause.message);
  return failed("infrastructure", errorText(cause));
}

export function outcomeOfStop(stop: StopReason): Outcome {
  switch (stop.kind) {
    case "lease":
      return { kind: "abandoned", code: stop.code, message: stop.message };
    case "timeout":
      return failed("timeout", `the build ran longer than its timeout of ${stop.timeoutMs} ms`);
    case "shutdown":
      return failed("infrastructure", "worker shutting down");
  }
}

function failed(reason: FailReason, message: string): Outcome {
  const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message;
  return { kind: "failed", reason, message: text || reason };
}
