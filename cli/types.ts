/** The API's JSON, as far as the CLI reads it (the control plane's routes are the reference). */

export type HealthCheck =
  | { type: "http"; port: number; path: string }
  | { type: "command"; command: string };

export interface Application {
  name: string;
  repo_url: string;
  build_command: string;
  artifact_path: string;
  run_command: string;
  health_check: HealthCheck | null;
  regions: string[];
  build_timeout_s: number | null;
  created_at: string;
}

export type BuildStatus = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED";

export interface Build {
  id: number;
  app: string;
  commit_sha: string;
  status: BuildStatus;
  failure_reason: string | null;
  failure_message: string | null;
  attempt: number;
  max_attempts: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  run_after: string | null;
  worker_id: string | null;
  size_bytes: number | null;
}

export interface RegionReplication {
  region: string;
  status: "PENDING" | "COPYING" | "COMPLETE" | "FAILED";
  bytes_total: number;
  bytes_done: number;
  percent: number;
  error: string | null;
}

export interface BuildDetail extends Build {
  deployable: boolean;
  replication: RegionReplication[];
}

export interface LogLine {
  attempt: number;
  seq: number;
  ts: string;
  line: string;
}

export interface LogPage {
  build_id: number;
  status: BuildStatus;
  lines: LogLine[];
  next_cursor: string | null;
}

/** The last NDJSON line of `?follow=1`: the build ended, or the server asks to reconnect. */
export type LogEnd =
  | {
      end: true;
      status: BuildStatus;
      failure_reason: string | null;
      failure_message: string | null;
    }
  | { end: false; reconnect_after: string | null };

export type DeploymentStatus =
  | "ROLLING"
  | "SUCCEEDED"
  | "ROLLED_BACK"
  | "ABORTED"
  | "FAILED"
  | "SUPERSEDED";

export interface Deployment {
  id: number;
  app: string;
  build_id: number;
  previous_build_id: number | null;
  status: DeploymentStatus;
  reason: string | null;
  waiting: string | null;
  generation: number | null;
  rollback_of: number | null;
  created_by: string;
  created_at: string;
  finished_at: string | null;
}

export interface RegionCounts {
  pending: number;
  downloading: number;
  installed: number;
  healthy: number;
  failed: number;
  unreachable: number;
}

export interface Wave {
  name: string;
  status: "pending" | "rolling" | "baking" | "passed" | "failed";
  percent: number | null;
  detail: string | null;
}

export interface DeploymentDetail extends Deployment {
  /** Staged rollouts: canary, then region by region (one wave for all-at-once). */
  waves?: Wave[];
  paused_by?: string | null;
  regions: {
    region: string;
    machines: number;
    counts: RegionCounts;
    done: boolean;
    waiting: string | null;
  }[];
}

export interface RegionTarget {
  generation: number;
  deployment_id: number;
  build_id: number;
}

export interface AppGoal {
  app: string;
  generation: number;
  deployment_id: number;
  build_id: number;
  regions: Record<string, RegionTarget>;
}

export interface Goal {
  generation: number;
  apps: Record<string, AppGoal>;
}

export interface Machine {
  region: string;
  machine_id: string;
  app: string;
  build_id: number | null;
  generation: number | null;
  state: string;
  detail?: string | null;
  /** Restarts of the app's process since its release started (agents since step 11). */
  restarts?: number;
  reachable: boolean;
  relay_id: string;
  reported_at: string;
}

export interface Relay {
  region: string;
  relay_id: string;
  url: string | null;
  machines: number;
  last_report_at: string;
  stale: boolean;
}
