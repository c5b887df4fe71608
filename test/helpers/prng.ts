/**
 * The seeded PRNG every fuzz and campaign test uses, so a failure reproduces from its seed
 * (HILT_FUZZ_SEED overrides a suite's default seed).
 */

/** mulberry32: small, fast, deterministic for a seed; floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a suite: HILT_FUZZ_SEED when set, else the suite's own default. */
export function fuzzSeed(fallback: number): number {
  return Number(process.env.HILT_FUZZ_SEED ?? fallback) >>> 0;
}
