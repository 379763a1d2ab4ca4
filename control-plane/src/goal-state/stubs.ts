import type { Env } from "../env.ts";
import type { GoalState } from "./durable-object.ts";

/** Where each region's instance should live (Durable Object location hints). */
const LOCATION_HINTS: Record<string, DurableObjectLocationHint> = {
  "us-east": "enam",
  "us-west": "wnam",
  "eu-west": "weur",
  "eu-central": "eeur",
  "ap-south": "apac",
  "ap-southeast": "apac",
  "ap-northeast": "apac",
  "sa-east": "sam",
  "af-south": "afr",
  "me-central": "me",
  "oc-east": "oc",
};

export function globalStub(env: Env): DurableObjectStub<GoalState> {
  return env.GOAL_STATE.get(env.GOAL_STATE.idFromName("global")) as DurableObjectStub<GoalState>;
}

export function regionStub(env: Env, region: string): DurableObjectStub<GoalState> {
  const hint = LOCATION_HINTS[region];
  const id = env.GOAL_STATE.idFromName(`region:${region}`);
  return (
    hint ? env.GOAL_STATE.get(id, { locationHint: hint }) : env.GOAL_STATE.get(id)
  ) as DurableObjectStub<GoalState>;
}
