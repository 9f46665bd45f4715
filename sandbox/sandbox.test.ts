import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SuiteContext } from './suite.ts'
import { cases, startSuite } from './suite.ts'

describe('the sandbox on Node', () => {
  let ctx: SuiteContext & { close(): Promise<void> }
  beforeAll(async () => {
    ctx = await startSuite()
  })
  afterAll(() => ctx.close())
  for (const c of cases) it(c.name, () => c.run(ctx))
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
