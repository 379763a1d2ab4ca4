import { MASK_BITS_MAX, MASK_BITS_MIN } from "./fastcdc-tables.ts";

/** The chunking algorithm; a manifest names it so a future change of algorithm is explicit. */
export const CHUNKER_ALGORITHM = "fastcdc-2020";

/**
 * Content-defined chunking parameters (FastCDC 2020, the Rust `fastcdc` crate's v2020 cut points).
 * Every chunk but the last is at least `min_size` (rounded down to even) and at most `max_size`.
 * Field names are snake_case because the manifest carries them as they are.
 */
export interface ChunkerParams {
  readonly algorithm: typeof CHUNKER_ALGORITHM;
  /** No cut point is looked for before this many bytes. Default 1 MiB. */
  readonly min_size: number;
  /** The expected chunk size; a power of two is best (it is rounded to one). Default 4 MiB. */
  readonly avg_size: number;
  /** A chunk is cut here if no cut point came first. Default 16 MiB. */
  readonly max_size: number;
  /**
   * Normalized chunking level 0-3: how much harder a cut is before `avg_size` and easier after
   * it. Higher levels give sizes closer to the average. Default 1 (the crate's default).
   */
  readonly normalization: 0 | 1 | 2 | 3;
}

const MiB = 1024 * 1024;

/** DESIGN section 5: about 1 MiB minimum, 4 MiB average, 16 MiB maximum. */
export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = Object.freeze({
  algorithm: CHUNKER_ALGORITHM,
  min_size: 1 * MiB,
  avg_size: 4 * MiB,
  max_size: 16 * MiB,
  normalization: 1,
});

/** The crate's accepted ranges; the masks table covers exactly these. */
export const CHUNKER_LIMITS = Object.freeze({
  min_size: [64, 1 * MiB],
  avg_size: [256, 4 * MiB],
  max_size: [1024, 16 * MiB],
} as const);

/** Problems with `params`, empty when they are usable. */
export function chunkerParamsProblems(params: ChunkerParams): string[] {
  const problems: string[] = [];
  if (params.algorithm !== CHUNKER_ALGORITHM) {
    problems.push(
      `algorithm must be "${CHUNKER_ALGORITHM}", got ${JSON.stringify(params.algorithm)}`,
    );
  }
  for (const field of ["min_size", "avg_size", "max_size"] as const) {
    const [low, high] = CHUNKER_LIMITS[field];
    const value = params[field];
    if (!Number.isInteger(value) || value < low || value > high) {
      problems.push(`${field} must be an integer in [${low}, ${high}], got ${value}`);
    }
  }
  if (!(params.min_size <= params.avg_size && params.avg_size <= params.max_size)) {
    problems.push(
      `sizes must satisfy min_size <= avg_size <= max_size, got ${params.min_size}, ${params.avg_size}, ${params.max_size}`,
    );
  }
  if (![0, 1, 2, 3].includes(params.normalization)) {
    problems.push(`normalization must be 0, 1, 2 or 3, got ${params.normalization}`);
  }
  return problems;
}

/** Throws a RangeError listing every problem with `params`. */
export function assertChunkerParams(params: ChunkerParams): void {
  const problems = chunkerParamsProblems(params);
  if (problems.length > 0) {
    throw new RangeError(`invalid chunker parameters: ${problems.join("; ")}`);
  }
}

/** Mask sizes in bits: before `avg_size` (small, harder) and after it (large, easier). */
export function maskBits(params: ChunkerParams): { before: number; after: number } {
  const bits = Math.round(Math.log2(params.avg_size));
  const before = bits + params.normalization;
  const after = bits - params.normalization;
  if (before > MASK_BITS_MAX || after < MASK_BITS_MIN) {
    throw new RangeError(`no cut mask for avg_size ${params.avg_size}`);
  }
  return { before, after };
}
