import { bucketBinding, type Config } from "../config.ts";
import type { Env } from "../env.ts";

export const chunkKey = (digest: string) => `chunks/${digest}`;
export const manifestKey = (buildId: number) => `manifests/${buildId}.json`;
export const signatureKey = (buildId: number) => `manifests/${buildId}.sig`;

export function bucketFor(env: Env, region: string): R2Bucket {
  const bucket = env[bucketBinding(region)];
  if (!bucket) throw new Error(`region ${region} has no bucket binding ${bucketBinding(region)}`);
  return bucket;
}

export const primaryRegion = (config: Config) => config.regions[0]!;
