/** The gateway suite on Node, and the same suite on Deno in a child process. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cases, clientFor, nodeOnlyCases } from './gateway-suite.ts'
import type { RunningGateway } from './gateway-server.ts'
import { startGateway } from './gateway-server.ts'

const run = promisify(execFile)

describe('gateway on Node', () => {
  let gw: RunningGateway
  beforeAll(async () => {
    gw = await startGateway()
  })
  afterAll(() => gw.close())
  for (const c of [...cases, ...nodeOnlyCases])
    it(c.name, () => c.run({ url: gw.url, client: clientFor(gw.url) }))

  it('promtool accepts the metrics ark exposes', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    const child = execFile('promtool', ['check', 'metrics'])
    child.stdin?.end(text)
    const [code, output] = await new Promise<[number | null, string]>((resolve, reject) => {
      let out = ''
      // Without promtool the exit code alone (-2) would say nothing: name what is missing.
      child.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new Error('promtool is not installed: apt-get install prometheus (.ci/run does)')
            : err,
        ),
      )
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
      child.on('close', (c) => resolve([c, out]))
    })
    expect(output).toBe('')
    expect(code).toBe(0)
  })
})

describe('gateway on Deno', () => {
  it('passes the same suite', { timeout: 90_000 }, async () => {
    const { stdout } = await run(
      'node_modules/.bin/deno',
      ['run', '-A', '--unstable-no-legacy-abort', 'test/deno-gateway.ts'],
      {
        env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
        maxBuffer: 16 * 1024 * 1024,
      },
    )
    const results = JSON.parse(stdout) as { runtime: string; results: { name: string; error?: string }[] }
    expect(results.runtime).toMatch(/^deno 2\./)
    expect(results.results.filter((r) => r.error !== undefined)).toEqual([])
    expect(results.results.map((r) => r.name)).toEqual(cases.map((c) => c.name))
  })
})
