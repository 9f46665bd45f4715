/**
 * sandbox: one tiny call (the built-in echo plugin) through ark's Wasm sandbox, isolated on a plugin thread
 * with its timeout armed, on Node in-process and on Deno in a child process. Baseline: the same plugin called
 * by the Extism SDK on the calling thread, without isolation (what a stuck plugin would freeze).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { EchoLatency } from '../lib/sandbox-echo.ts'
import { measureEcho } from '../lib/sandbox-echo.ts'
import type { GateSession, Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'

const CALLS = 5000
const GATE_CALLS = 1000

async function onDeno(calls: number): Promise<EchoLatency> {
  const { stdout } = await promisify(execFile)(
    'node_modules/.bin/deno',
    [
      'run',
      '--allow-read',
      '--allow-env',
      '--allow-sys',
      'bench/lib/sandbox-echo.ts',
      '--child',
      String(calls),
    ],
    { env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' } },
  )
  return JSON.parse(stdout) as EchoLatency
}

function measuresOf(runtime: string, l: EchoLatency, target: boolean): Measure[] {
  return [
    {
      name: `${runtime} isolated p50`,
      value: l.isolated.p50,
      unit: 'us',
      ...(target ? { target: { op: '<=', value: 100 } as const } : {}),
      note: `main thread ${l.mainThread.p50.toFixed(1)} us`,
    },
    {
      name: `${runtime} isolated p99`,
      value: l.isolated.p99,
      unit: 'us',
      note: `main thread ${l.mainThread.p99.toFixed(1)} us`,
    },
    { name: `${runtime} isolated/main thread p50`, value: l.isolated.p50 / l.mainThread.p50, unit: 'x' },
  ]
}

const scenario: Scenario = {
  name: 'sandbox',
  summary:
    'echo plugin call through the sandbox (plugin thread, timeout armed) vs the Extism SDK on the calling thread',
  async run(context: RunContext): Promise<ScenarioResult> {
    context.log(`node: ${String(CALLS)} calls each way`)
    const node = await measureEcho(CALLS)
    context.log(`deno: ${String(CALLS)} calls each way`)
    const deno = await onDeno(CALLS)
    return {
      measures: [...measuresOf('node', node, true), ...measuresOf('deno', deno, false)],
      notes: [
        'The isolated call posts the input to a plugin thread and waits for its answer (two thread hops); a timer stops the thread if the call overruns.',
        'The main-thread baseline is the Extism SDK calling the same module on the calling thread, plus the kernel reset the sandbox also does after each call.',
      ],
    }
  },
  gate(): Promise<GateSession> {
    return Promise.resolve({
      async sample() {
        const l = await measureEcho(GATE_CALLS)
        return { 'isolated/main thread p50': l.isolated.p50 / l.mainThread.p50 }
      },
      close: () => Promise.resolve(),
    })
  },
}

export default scenario
