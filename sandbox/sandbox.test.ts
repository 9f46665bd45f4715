import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox, SandboxError } from './index.ts'
import type { SuiteContext } from './suite.ts'
import { cases, startSuite } from './suite.ts'
import { wasm } from './testdata/plugins.ts'

describe('the sandbox on Node', () => {
  let ctx: SuiteContext & { close(): Promise<void> }
  beforeAll(async () => {
    ctx = await startSuite()
  })
  afterAll(() => ctx.close())
  for (const c of cases) it(c.name, () => c.run(ctx))
})

// Node only: Deno 2.9 cannot interrupt a worker's running code (README, "What does not work yet").
describe('stopping a plugin on Node', () => {
  it('leaves no thread spinning', async () => {
    const sandbox = new Sandbox({ maxThreads: 1 })
    try {
      const loop = await sandbox.load({
        source: { bytes: await wasm('loop'), name: 'loop' },
        function: 'call',
        limits: { timeoutMs: 200 },
      })
      await expect(loop.call(new Uint8Array(0))).rejects.toSatisfy(
        (err) => err instanceof SandboxError && err.kind === 'timeout',
      )
      await new Promise((r) => setTimeout(r, 100))
      const before = process.cpuUsage()
      await new Promise((r) => setTimeout(r, 500))
      const used = process.cpuUsage(before)
      // A loop left running would use the whole 500 ms of a core.
      expect((used.user + used.system) / 1000).toBeLessThan(250)
    } finally {
      await sandbox.close()
    }
  })
})

describe('the sandbox on Deno', () => {
  it('passes the same suite', async () => {
    const { stdout } = await promisify(execFile)(
      'node_modules/.bin/deno',
      ['run', '--allow-read', '--allow-net', '--allow-env', '--allow-sys', 'sandbox/deno-suite.ts'],
      { env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' }, maxBuffer: 16 * 1024 * 1024 },
    )
    const report = JSON.parse(stdout) as { runtime: string; results: { name: string; error?: string }[] }
    expect(report.runtime).toMatch(/^deno 2\./)
    expect(report.results.map((r) => r.name)).toEqual(cases.map((c) => c.name))
    expect(report.results.filter((r) => r.error !== undefined)).toEqual([])
  }, 120_000)
})
