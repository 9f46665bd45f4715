import { defineConfig } from 'vitest/config'
import { BaseSequencer } from 'vitest/node'
import type { TestSpecification } from 'vitest/node'

/**
 * Files that take a minute or more, longest first (CI, 2026-12-07: pool-deployments 117 s, controller 112 s,
 * controller-outage 101 s, the gate's own test 100 s, pools 82 s). On a fresh clone vitest has no durations
 * cached and starts the largest files first; these are small files that wait on real servers, so they
 * started last and ran on alone for two minutes after everything else was done. Started first, they run
 * beside the rest.
 */
const SLOW_FIRST = [
  'test/pool-deployments.test.ts',
  'test/controller.test.ts',
  'test/controller-outage.test.ts',
  'bench/gate.test.ts',
  'test/pools.test.ts',
  'gateway/runtime/mcp/client.test.ts',
  'test/deploy.test.ts',
  'controller/kube/leader.test.ts',
]

class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files)
    const rank = (spec: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((name) => spec.moduleId.endsWith(`/${name}`))
      return i === -1 ? SLOW_FIRST.length : i
    }
    // Array.prototype.sort is stable: the rest keep vitest's own order.
    return sorted.sort((a, b) => rank(a) - rank(b))
  }
}

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 20_000,
    // Three files at a time on two cores: most of the slow files wait on real servers (kube-apiserver, Redis,
    // child processes) rather than compute. Measured 2026-12-07 on a 2-core AMD EPYC VM: 717 s with two,
    // 475 s with three (every test passing), one at a time well over ten minutes.
    maxWorkers: 3,
    hookTimeout: 20_000,
    sequence: { sequencer: SlowFirst },
  },
})
