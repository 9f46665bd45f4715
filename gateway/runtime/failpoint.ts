/**
 * Failpoints: test-only switches that plant a real regression on the hot path, so that the benchmark gate's
 * own test can prove the gate catches one (bench/gate.test.ts). Read once from the environment when this
 * module loads; at zero, the default, a failpoint costs one comparison.
 *
 * ARK_FAILPOINT_LOOP_DELAY_US: busy-waits this many microseconds in every tool-loop iteration.
 */

function fromEnv(name: string): number {
  try {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
    const value = Number(env?.[name] ?? 0)
    return Number.isFinite(value) && value > 0 ? value : 0
  } catch {
    // Deno without --allow-env: no failpoints.
    return 0
  }
}

export const LOOP_DELAY_US = fromEnv('ARK_FAILPOINT_LOOP_DELAY_US')

/** Holds the thread, as a slow piece of synchronous code would. */
export function spin(microseconds: number): void {
  const until = performance.now() + microseconds / 1000
  while (performance.now() < until) {
    // spinning on purpose
  }
}
