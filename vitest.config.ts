import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 20_000,
    // Two files at a time: most of the slow files wait on real servers (kube-apiserver, Redis, child
    // processes) rather than compute, and one at a time the suite takes over ten minutes on two cores.
    maxWorkers: 2,
    hookTimeout: 20_000,
  },
})
