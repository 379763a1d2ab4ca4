import assert from "node:assert/strict";
import { ManifestError } from "../protocol/index.ts";
import { ApiError, TransportError } from "./api.ts";
import { CommitNotFoundError } from "./git-checkout.ts";
import { AttemptStopped, BuildFailure, outcomeOf } from "./outcome.ts";

const running = new AbortController().signal;

Deno.test("outcomeOf() reports build failures as final reasons", () => {
  assert.deepEqual(outcomeOf(new BuildFailure("build_error", "exited 2"), running), {
    kind: "failed",
    reason: "build_error",
    message: "exited 2",
  });
  assert.deepEqual(outcomeOf(new CommitNotFoundError("commit x not found in y"), running), {
    kind: "failed",
    reason: "build_error",
    message: "commit x not found in y",
  });
  assert.equal(
    (outcomeOf(new ManifestError(["too many chunks"]), running) as { reason: string }).reason,
    "invalid_artifact",
  );
});

Deno.test("outcomeOf() reports anything unexpected as infrastructure (retried)", () => {
  const outcome = outcomeOf(new TransportError("PUT /v1/chunks/x: timed out"), running);
  assert.deepEqual(outcome, {
    kind: "failed",
    reason: "infrastructure",
    message: "PUT /v1/chunks/x: timed out",
  });
});

Deno.test("outcomeOf() abandons an attempt the control plane refused (409)", () => {
  assert.deepEqual(outcomeOf(new ApiError(409, "lease_lost", "not yours"), running), {
    kind: "abandoned",
    code: "lease_lost",
    message: "not yours",
  });
});

Deno.test("outcomeOf() goes by why the attempt was stopped, not by what that broke", () => {
  const stopped = (stop: ConstructorParameters<typeof AttemptStopped>[0]) =>
    AbortSignal.abort(new AttemptStopped(stop));
  const symptom = new TransportError("aborted");
  assert.deepEqual(outcomeOf(symptom, stopped({ kind: "timeout", timeoutMs: 10_000 })), {
    kind: "failed",
    reason: "timeout",
    message: "the build ran longer than its timeout of 10000 ms",
  });
  assert.deepEqual(outcomeOf(symptom, stopped({ kind: "shutdown" })), {
    kind: "failed",
    reason: "infrastructure",
    message: "worker shutting down",
  });
  assert.deepEqual(
    outcomeOf(symptom, stopped({ kind: "lease", code: "build_canceled", message: "canceled" })),
    { kind: "abandoned", code: "build_canceled", message: "canceled" },
  );
});

Deno.test("outcomeOf() keeps a failure message within the API's limit", () => {
  const outcome = outcomeOf(new BuildFailure("build_error", "x".repeat(10_000)), running);
  assert.ok(outcome.kind === "failed" && outcome.message.length <= 4096);
});
