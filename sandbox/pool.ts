/**
 * Plugin threads, shared by every plugin: a call goes to an idle thread, preferably one that already holds an
 * instance of its plugin, so isolation costs a message each way rather than an instantiation per call. The
 * pool owns every limit that needs a clock or a kill switch: a call that overruns its timeout, or whose caller
 * gives up, has its thread terminated (the only way to stop Wasm that never yields) and replaced on demand.
 */
import type { FailureKind, HttpRequestMessage, PluginDefinition, ToMain, ToWorker } from './protocol.ts'
import { HTTP_HEADER_BYTES, HTTP_STATE } from './protocol.ts'
import type { Thread } from './thread.ts'
import { startThread } from './thread.ts'

/** A sandboxed call failed; `kind` says how, `message` says what happened, for the model and the operator. */
export class SandboxError extends Error {
  override readonly name = 'SandboxError'
  readonly kind: FailureKind
  constructor(kind: FailureKind, message: string) {
    super(message)
    this.kind = kind
  }
}

export interface HttpAnswer {
  readonly status: number
  readonly body: Uint8Array
}

export interface CallOptions {
  readonly timeoutMs: number
  readonly signal?: AbortSignal | undefined
  /** Performs a plugin's HTTP request (the Tool's host policy decides), or throws SandboxError('denied' | 'error'). */
  readonly http: (request: HttpRequestMessage, signal: AbortSignal, maxBytes: number) => Promise<HttpAnswer>
}

export interface PoolOptions {
  /** Threads at most; calls beyond wait for one (default 4). */
  readonly maxThreads?: number
  /** Largest HTTP response body a plugin can receive (default 4 MiB). */
  readonly maxHttpResponseBytes?: number
  /** Called when threads or instances come and go, for the metrics. */
  readonly onChange?: (threads: number, instances: number) => void
}

interface Running {
  readonly resolve: (output: Uint8Array) => void
  readonly reject: (err: SandboxError) => void
  readonly options: CallOptions
  /** Aborted when the call ends, whatever the reason: stops an HTTP request the plugin is waiting for. */
  readonly ended: AbortController
}

interface PooledThread {
  readonly thread: Thread
  readonly http: SharedArrayBuffer
  /** Plugins defined on this thread; those called at least once hold an instance. */
  readonly defined: Set<number>
  readonly instantiated: Set<number>
  running: Running | undefined
  dead: boolean
}

interface Waiter {
  readonly pluginId: number
  readonly start: (t: PooledThread) => void
  readonly fail: (err: SandboxError) => void
}

/** worker.ts beside this file, or worker.js in a compiled build: tsc rewrites import specifiers, not URLs. */
const WORKER_URL = new URL(
  `./worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`,
  import.meta.url,
)

export class ThreadPool {
  readonly #maxThreads: number
  readonly #httpBytes: number
  readonly #onChange: ((threads: number, instances: number) => void) | undefined
  readonly #threads: PooledThread[] = []
  /** Threads being started: they count against the maximum. */
  #starting = 0
  readonly #waiting: Waiter[] = []
  readonly #definitions = new Map<number, PluginDefinition>()
  #nextId = 1
  #closed = false

  constructor(options: PoolOptions = {}) {
    this.#maxThreads = Math.max(1, options.maxThreads ?? 4)
    this.#httpBytes = options.maxHttpResponseBytes ?? 4 * 1024 * 1024
    this.#onChange = options.onChange
  }

  /** Registers a plugin; threads instantiate it when they first run one of its calls. */
  define(definition: PluginDefinition): number {
    const id = this.#nextId++
    this.#definitions.set(id, definition)
    return id
  }

  /** Forgets a plugin: threads drop their instances of it. */
  drop(id: number): void {
    if (!this.#definitions.delete(id)) return
    for (const t of this.#threads) {
      if (t.defined.delete(id)) t.thread.post({ t: 'drop', id } satisfies ToWorker)
      t.instantiated.delete(id)
    }
    this.#changed()
  }

  /** Whether a plugin is registered (it is dropped by `drop`, and then needs `define` again). */
  has(id: number): boolean {
    return this.#definitions.has(id)
  }

  async call(pluginId: number, fn: string, input: Uint8Array, options: CallOptions): Promise<Uint8Array> {
    if (this.#closed) throw new SandboxError('error', 'the sandbox is shut down')
    if (!this.#definitions.has(pluginId)) throw new SandboxError('error', 'the plugin was unloaded')
    const signal = options.signal
    if (signal?.aborted === true) throw new SandboxError('error', 'the call was cancelled before it started')
    const deadline = performance.now() + options.timeoutMs
    // Waiting for a thread counts against the timeout: a caller's budget is wall-clock time.
    const thread = await this.#acquire(pluginId, signal, options.timeoutMs)
    const left = deadline - performance.now()
    if (left <= 0) {
      this.#release(thread)
      throw new SandboxError('timeout', `no plugin thread was free within ${String(options.timeoutMs)} ms`)
    }
    return this.#run(thread, pluginId, fn, input, options, left)
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const w of this.#waiting.splice(0)) w.fail(new SandboxError('error', 'the sandbox is shut down'))
    const threads = this.#threads.splice(0)
    for (const t of threads) {
      t.dead = true
      t.running?.reject(new SandboxError('error', 'the sandbox is shut down'))
    }
    await Promise.all(threads.map((t) => t.thread.terminate()))
    this.#changed()
  }

  #run(
    t: PooledThread,
    pluginId: number,
    fn: string,
    input: Uint8Array,
    options: CallOptions,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (t.dead || this.#closed) {
        reject(new SandboxError('error', 'the sandbox is shut down'))
        return
      }
      if (options.signal?.aborted === true) {
        this.#release(t)
        reject(new SandboxError('error', 'the call was cancelled before it started'))
        return
      }
      const ended = new AbortController()
      const onAbort = (): void => {
        this.#kill(t, new SandboxError('error', 'the call was cancelled; its plugin was stopped'))
      }
      const finish = (): void => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        ended.abort()
        t.running = undefined
      }
      t.running = {
        resolve: (output) => {
          finish()
          resolve(output)
        },
        reject: (err) => {
          finish()
          reject(err)
        },
        options,
        ended,
      }
      const timer = setTimeout(() => {
        this.#kill(
          t,
          new SandboxError(
            'timeout',
            `the plugin did not finish within ${String(Math.round(options.timeoutMs))} ms and was stopped`,
          ),
        )
      }, timeoutMs)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      if (!t.defined.has(pluginId)) {
        const definition = this.#definitions.get(pluginId)
        if (definition === undefined) {
          t.running.reject(new SandboxError('error', 'the plugin was unloaded'))
          this.#release(t)
          return
        }
        t.defined.add(pluginId)
        t.thread.post({ t: 'plugin', id: pluginId, definition } satisfies ToWorker)
      }
      if (!t.instantiated.has(pluginId)) {
        t.instantiated.add(pluginId)
        this.#changed()
      }
      t.thread.post({ t: 'call', plugin: pluginId, fn, input } satisfies ToWorker)
    })
  }

  #onMessage(t: PooledThread, message: ToMain): void {
    if (message.t === 'evicted') {
      if (t.instantiated.delete(message.id)) this.#changed()
      return
    }
    const running = t.running
    if (running === undefined || t.dead) return
    switch (message.t) {
      case 'ready':
        return
      case 'done':
        running.resolve(message.output)
        this.#release(t)
        return
      case 'fail':
        running.reject(new SandboxError(message.kind, message.message))
        this.#release(t)
        return
      case 'http':
        this.#serveHttp(t, running, message.request)
        return
      case 'stop':
        this.#kill(t, new SandboxError(message.kind, message.message))
        return
    }
  }

  #serveHttp(t: PooledThread, running: Running, request: HttpRequestMessage): void {
    const state = new Int32Array(t.http, 0, 4)
    const capacity = t.http.byteLength - HTTP_HEADER_BYTES
    const answer = (kind: number, status: number, body: Uint8Array): void => {
      if (running.ended.signal.aborted || t.dead) return
      const bytes = body.byteLength > capacity ? body.subarray(0, capacity) : body
      new Uint8Array(t.http, HTTP_HEADER_BYTES, bytes.byteLength).set(bytes)
      Atomics.store(state, HTTP_STATE.kind, kind)
      Atomics.store(state, HTTP_STATE.status, status)
      Atomics.store(state, HTTP_STATE.length, bytes.byteLength)
      Atomics.store(state, HTTP_STATE.flag, 1)
      Atomics.notify(state, HTTP_STATE.flag)
    }
    running.options.http(request, running.ended.signal, capacity).then(
      (r) => {
        answer(0, r.status, r.body)
      },
      (err: unknown) => {
        const denied = err instanceof SandboxError && err.kind === 'denied'
        const message = err instanceof Error ? err.message : String(err)
        answer(denied ? 1 : 2, 0, new TextEncoder().encode(message))
      },
    )
  }

  #kill(t: PooledThread, err: SandboxError): void {
    if (t.dead) return
    t.dead = true
    this.#remove(t)
    t.running?.reject(err)
    // A thread waiting for an HTTP answer is woken with a failure, in case terminating it does not stop it
    // (Deno's does not interrupt running code): it must not wait there forever.
    const state = new Int32Array(t.http, 0, 4)
    Atomics.store(state, HTTP_STATE.kind, 2)
    Atomics.store(state, HTTP_STATE.length, 0)
    Atomics.store(state, HTTP_STATE.flag, 1)
    Atomics.notify(state, HTTP_STATE.flag)
    void t.thread.terminate()
    // Whoever waits for a thread gets a new one in its place.
    this.#serveWaiters()
  }

  #remove(t: PooledThread): void {
    const i = this.#threads.indexOf(t)
    if (i >= 0) this.#threads.splice(i, 1)
    this.#changed()
  }

  #acquire(pluginId: number, signal: AbortSignal | undefined, timeoutMs: number): Promise<PooledThread> {
    const idle = this.#idleFor(pluginId)
    if (idle !== undefined) {
      idle.running = RESERVED
      return Promise.resolve(idle)
    }
    return new Promise<PooledThread>((resolve, reject) => {
      const leave = (err: SandboxError): void => {
        const i = this.#waiting.indexOf(waiter)
        if (i >= 0) this.#waiting.splice(i, 1)
        waiter.fail(err)
      }
      const onAbort = (): void => {
        leave(new SandboxError('error', 'the call was cancelled while it waited for a plugin thread'))
      }
      const timer = setTimeout(() => {
        leave(new SandboxError('timeout', `no plugin thread was free within ${String(timeoutMs)} ms`))
      }, timeoutMs)
      const waiter: Waiter = {
        pluginId,
        start: (t) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          resolve(t)
        },
        fail: (err) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(waiter)
      this.#serveWaiters()
    })
  }

  #idleFor(pluginId: number): PooledThread | undefined {
    let any: PooledThread | undefined
    for (const t of this.#threads) {
      if (t.running !== undefined || t.dead) continue
      if (t.instantiated.has(pluginId)) return t
      any ??= t
    }
    return any
  }

  /** Hands idle threads to waiters, and starts threads for the rest while there is room. */
  #serveWaiters(): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0] as Waiter
      const idle = this.#idleFor(next.pluginId)
      if (idle === undefined) break
      this.#waiting.shift()
      idle.running = RESERVED
      next.start(idle)
    }
    while (
      !this.#closed &&
      this.#waiting.length > this.#starting &&
      this.#threads.length + this.#starting < this.#maxThreads
    ) {
      this.#spawn().then(
        (t) => {
          this.#release(t)
        },
        (err: unknown) => {
          const w = this.#waiting.shift()
          w?.fail(new SandboxError('error', `a plugin thread could not start: ${String(err)}`))
        },
      )
    }
  }

  #release(t: PooledThread): void {
    if (t.dead) return
    t.running = undefined
    this.#serveWaiters()
  }

  #spawn(): Promise<PooledThread> {
    // Counted until the thread is up or has failed, never less: a failure that came back synchronously
    // would otherwise let #serveWaiters start threads in a loop.
    this.#starting++
    const started = this.#boot()
    void started
      .finally(() => {
        this.#starting--
      })
      .catch(() => {})
    return started
  }

  async #boot(): Promise<PooledThread> {
    const http = new SharedArrayBuffer(HTTP_HEADER_BYTES + this.#httpBytes)
    const thread = startThread(WORKER_URL, { http: { buffer: http } })
    const t: PooledThread = {
      thread,
      http,
      defined: new Set(),
      instantiated: new Set(),
      running: undefined,
      dead: false,
    }
    const ready = new Promise<void>((resolve, reject) => {
      thread.onMessage((m) => {
        if ((m as ToMain).t === 'ready') resolve()
        else this.#onMessage(t, m as ToMain)
      })
      thread.onExit(reject)
    })
    thread.onExit((reason) => {
      const memory = /memory|allocation/i.test(reason)
      this.#kill(
        t,
        new SandboxError(
          memory ? 'memory' : 'trap',
          memory
            ? `the plugin exhausted its thread's memory and was stopped (${reason})`
            : `the plugin thread died: ${reason}`,
        ),
      )
    })
    await ready
    if (this.#closed) {
      await thread.terminate()
      throw new SandboxError('error', 'the sandbox is shut down')
    }
    this.#threads.push(t)
    this.#changed()
    return t
  }

  #changed(): void {
    if (this.#onChange === undefined) return
    let instances = 0
    for (const t of this.#threads) instances += t.instantiated.size
    this.#onChange(this.#threads.length, instances)
  }
}

/** Marks a thread handed to a caller that has not posted its call yet. */
const RESERVED: Running = {
  resolve: () => {},
  reject: () => {},
  options: { timeoutMs: 0, http: () => Promise.reject(new SandboxError('error', 'no call is running')) },
  ended: new AbortController(),
}
