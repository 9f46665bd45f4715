/**
 * One OS thread for plugins. Plugins run there, not on the gateway's event loop: a plugin that never returns
 * is ended by terminating its thread, which no runtime can do to code running on the main thread.
 *
 * node:worker_threads on both runtimes. On Node, terminate() interrupts a plugin wherever it is, Wasm loops
 * included. On Deno 2.9 it does not interrupt running code, with either kind of worker (denoland/deno#35657):
 * the call still ends at its timeout and the thread is replaced, but the abandoned thread keeps its core busy
 * until the plugin returns or the process exits (README, "What does not work yet").
 */
import { Worker } from 'node:worker_threads'

export interface Thread {
  post(message: unknown): void
  /** Every message the thread sends, in order. */
  onMessage(listener: (message: unknown) => void): void
  /** The thread died on its own: an uncaught error, or out of memory. */
  onExit(listener: (reason: string) => void): void
  terminate(): Promise<void>
}

/** JS heap of one plugin thread: the Extism kernel keeps plugin memory blocks outside it, capped per call. */
const HEAP_MB = 64

export function startThread(url: URL, workerData: unknown): Thread {
  const worker = new Worker(url, {
    workerData,
    resourceLimits: { maxOldGenerationSizeMb: HEAP_MB, maxYoungGenerationSizeMb: 16 },
    // The Extism SDK imports node:wasi (unused here: worker.ts has its own file-less shim), which warns on
    // Node. Deno refuses Node's flags.
    ...('Deno' in globalThis ? {} : { execArgv: ['--disable-warning=ExperimentalWarning'] }),
  })
  // A thread waiting for work must not keep the process alive.
  worker.unref()
  let exited = false
  const exitListeners: ((reason: string) => void)[] = []
  let lastError: string | undefined
  worker.on('error', (err: Error) => {
    lastError = err.message
  })
  worker.on('exit', (code) => {
    if (exited) return
    exited = true
    const reason = lastError ?? `the plugin thread exited with code ${String(code)}`
    for (const l of exitListeners) l(reason)
  })
  return {
    post: (message) => {
      worker.postMessage(message)
    },
    onMessage: (listener) => {
      worker.on('message', listener)
    },
    onExit: (listener) => exitListeners.push(listener),
    async terminate() {
      exited = true
      await worker.terminate()
    },
  }
}
