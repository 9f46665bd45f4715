/**
 * The gate must be able to fail: a regression planted on the hot path (the loop failpoint, 200 us per
 * iteration, gateway/runtime/failpoint.ts) fails it, and the same gate passes without it.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const GATE = fileURLToPath(new URL('./gate.ts', import.meta.url))

interface GateRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

function gate(scenarios: readonly string[], env: Record<string, string> = {}): Promise<GateRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', GATE, ...scenarios],
      { env: { ...process.env, ...env }, timeout: 170_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

const PLANTED = { ARK_FAILPOINT_LOOP_DELAY_US: '200' }
/**
 * End to end the agent gate compares ark's p50 with the upstream's, which a busy machine slows too: with the
 * suite running three files at once, 200 us more a request read 2.92 against the gate's 3 (CI, 2026-12-07).
 * A millisecond more a request still shows the gate failing a regression, whatever else runs beside it.
 */
const PLANTED_END_TO_END = { ARK_FAILPOINT_LOOP_DELAY_US: '1000' }

describe('bench gate', () => {
  it('passes the tool loop as it is', { timeout: 180_000 }, async () => {
    const run = await gate(['toolloop'])
    expect(run.stdout, run.stderr).toMatch(/^ok +toolloop +loop\/baseline per iteration/m)
    expect(run.code).toBe(0)
  })

  it('fails when every loop iteration is 200 us slower', { timeout: 180_000 }, async () => {
    const run = await gate(['toolloop'], PLANTED)
    expect(run.stdout, run.stderr).toMatch(/^FAIL +toolloop +loop\/baseline per iteration +median +\d{3}/m)
    expect(run.code).toBe(1)
  })

  it('fails end to end: agents served by ark dev with the slower loop', { timeout: 180_000 }, async () => {
    const run = await gate(['agent'], PLANTED_END_TO_END)
    expect(run.stdout, run.stderr).toMatch(/^FAIL +agent /m)
    expect(run.code).toBe(1)
  })

  it('refuses a scenario it has no gate for', async () => {
    const run = await gate(['catalog'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('no gate for catalog')
  })
})
