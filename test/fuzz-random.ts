/**
 * The fuzz suite's randomness: a small seeded generator (mulberry32), and one independent stream per request
 * so that request #n is the same whatever ran before it and can be replayed alone (ARK_FUZZ_ONLY=n).
 */

export interface Rng {
  /** A float in [0, 1). */
  next(): number
  /** An integer in [min, max]. */
  int(min: number, max: number): number
  chance(p: number): boolean
  pick<T>(items: readonly T[]): T
}

export function rng(seed: number): Rng {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new Error('pick from an empty list')
      return items[Math.floor(next() * items.length)] as T
    },
  }
}

/** The generator of request `index` under `seed`: seeds mixed so that neighbouring indexes do not correlate. */
export function requestRng(seed: number, index: number): Rng {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return rng((h ^ (h >>> 16)) >>> 0)
}

/** The seed of this run: ARK_FUZZ_SEED (a number, or `random`), else a fixed one so CI runs are repeatable. */
export function seedFromEnv(env: Record<string, string | undefined>): number {
  const raw = env.ARK_FUZZ_SEED
  if (raw === undefined || raw === '') return 20_251_205
  if (raw === 'random') return Math.floor(Math.random() * 2 ** 31)
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`ARK_FUZZ_SEED must be a non-negative integer or "random", got ${raw}`)
  return n
}
