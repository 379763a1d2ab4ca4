// The public API of protocol/: runtime-neutral (Web APIs and npm packages only), imported by
// the control plane (workerd), the Deno programs and the tests.

export { type ManifestFromStreamOptions, manifestFromStream } from "./artifact.ts";
export { type ByteSource, readPieces } from "./byte-source.ts";
export {
  type Chunk,
  type ChunkStreamOptions,
  type ChunkWithBytes,
  chunkStream,
} from "./chunker.ts";
export {
  assertChunkerParams,
  CHUNKER_ALGORITHM,
  CHUNKER_LIMITS,
  type ChunkerParams,
  chunkerParamsProblems,
  DEFAULT_CHUNKER_PARAMS,
} from "./chunker-params.ts";
export { fromBase64, fromHex, toBase64, toHex } from "./encoding.ts";
export { CutFinder, chunkSizes } from "./fastcdc.ts";
export {
  type Canary,
  canaryBucket,
  encodeGoal,
  GOAL_VERSION,
  type GoalDocument,
  GoalError,
  type GoalVerifyResult,
  goalSchema,
  type HealthCheck,
  type SignedGoal,
  signGoal,
  verifyGoal,
} from "./goal.ts";
export {
  createSha256,
  DIGEST_PATTERN,
  type IncrementalHash,
  isDigest,
  sha256Hex,
  sha256HexOfStream,
} from "./hash.ts";
export {
  APP_NAME_PATTERN,
  buildManifest,
  COMMIT_SHA_PATTERN,
  checkManifest,
  decodeManifest,
  encodeManifest,
  MANIFEST_VERSION,
  MAX_MANIFEST_CHUNKS,
  type Manifest,
  type ManifestCheck,
  type ManifestChunk,
  type ManifestContents,
  ManifestError,
  type ManifestIdentity,
  manifestDigest,
  manifestSchema,
  parseManifest,
} from "./manifest.ts";
export {
  type ManifestVerifyResult,
  type SignedManifest,
  signManifest,
  verifyManifest,
} from "./manifest-signing.ts";
export {
  type DocumentKind,
  generateSigningKeys,
  KeyFormatError,
  type SignedDocument,
  Signer,
  signedBytes,
  Verifier,
  type VerifyFailure,
  type VerifyResult,
} from "./signing.ts";
