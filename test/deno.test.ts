import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { startControlPlane } from '../controller/index.ts'

const run = promisify(execFile)

describe('Deno 2 runs the same store, catalog and reconcilers', () => {
  it('loads the examples with the same result as Node', async () => {
    const { stdout } = await run(
      'node_modules/.bin/deno',
      ['run', '--allow-read', '--allow-env', 'test/deno-smoke.ts', 'examples'],
      {
        env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      },
    )
    const deno = JSON.parse(stdout) as {
      runtime: string
      resources: Record<string, string>
      problems: number
    }
    expect(deno.runtime).toMatch(/^deno 2\./)

    const cp = await startControlPlane('examples', { watch: false })
    const node: Record<string, string> = {}
    for (const r of cp.store.list()) {
      const c = cp.store.status(r.key)?.conditions.find((x) => x.type === 'Available')
      node[r.key] = c === undefined ? '-' : `${c.status} ${c.reason}`
    }
    await cp.close()
    expect(deno.resources).toEqual(node)
    expect(Object.keys(node)).toHaveLength(21)
    expect(deno.problems).toBe(0)
  })
})
