/**
 * The sandbox scenario's measurement, runtime-neutral so that Node runs it in-process and Deno as a child
 * (printing JSON): per-call latency of the built-in echo plugin through ark's sandbox (a plugin thread, the
 * call timeout armed), against the same plugin called by the Extism SDK on the calling thread, unisolated.
 */
import { readFile } from 'node:fs/promises'
import createPlugin from '@extism/extism'
import { Sandbox } from '../../sandbox/index.ts'
import { percentile } from './stats.ts'

export interface EchoLatency {
  /** Microseconds per call, through the sandbox. */
  readonly isolated: { readonly p50: number; readonly p99: number }
  /** Microseconds per call, the SDK on this thread. */
  readonly mainThread: { readonly p50: number; readonly p99: number }
}

const INPUT = new TextEncoder().encode('{"message":"hello from the benchmark"}')

async function time(calls: number, call: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const us: number[] = []
  for (let i = 0; i < calls; i++) {
    const start = performance.now()
    await call()
    us.push((performance.now() - start) * 1000)
  }
  return { p50: percentile(us, 50), p99: percentile(us, 99) }
}

/** `calls` timed calls of each kind, after a warm-up of the same size. */
export async function measureEcho(calls: number): Promise<EchoLatency> {
  const sandbox = new Sandbox({ maxThreads: 1 })
  const direct = await createPlugin(
    { wasm: [{ data: await readFile(new URL('../../plugins/dist/echo.wasm', import.meta.url)) }] },
    { useWasi: false, runInWorker: false },
  )
  try {
    const echo = await sandbox.load({
      source: { builtin: 'echo' },
      function: 'call',
      limits: { timeoutMs: 1000 },
    })
    const isolated = () => echo.call(INPUT)
    const unisolated = async () => {
      await direct.call('call', INPUT)
      // What the sandbox does after each call too: nothing a call allocated outlives it.
      await direct.reset()
    }
    await time(calls, isolated)
    await time(calls, unisolated)
    return { isolated: await time(calls, isolated), mainThread: await time(calls, unisolated) }
  } finally {
    await direct.close()
    await sandbox.close()
  }
}

// As a child process (Deno): measure and print.
if (process.argv.includes('--child')) {
  const calls = Number(process.argv[process.argv.indexOf('--child') + 1] ?? '2000')
  console.log(JSON.stringify(await measureEcho(calls)))
}
