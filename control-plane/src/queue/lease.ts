import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { builds } from "../db/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import type { BuildRow } from "./build-view.ts";

/**
 * Why a lease-guarded statement changed nothing: the build is gone (404), was canceled, or
 * the caller's lease is not the current one (409: the worker must stop; fencing).
 */
export async function leaseRefusal(db: Db, id: number, token: string): Promise<ApiError> {
  const b = await db.query.builds.findFirst({ where: eq(builds.id, id) });
  if (!b) return notFound("build", id);
  return refusalFor(b, token);
}

export function refusalFor(b: BuildRow, token: string): ApiError {
  const details = { status: b.status, attempt: b.attempt, failure_reason: b.failureReason };
  if (b.status === "FAILED" && b.failureReason === "canceled") {
    return new ApiError(
      409,
      "build_canceled",
      `build ${b.id} was canceled; stop working on it`,
      details,
    );
  }
  if (b.status === "FAILED" && b.failureReason === "timeout" && b.leaseToken === token) {
    return new ApiError(
      409,
      "build_timed_out",
      `build ${b.id} ran past its timeout; stop working on it`,
      details,
    );
  }
  return new ApiError(
    409,
    "lease_lost",
    `lease on build ${b.id} is not yours (attempt ${b.attempt}, ${b.status}); stop working on it`,
    details,
  );
}
