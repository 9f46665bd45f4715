/**
 * The inside of a plugin thread: Extism plugins, instantiated once and called many times, with ark's own host
 * functions where the SDK's would not hold a limit. The main thread (pool.ts) owns the timeout: this side
 * never has to notice that a plugin runs forever, because the whole thread is then terminated.
 *
 * What runs here is untrusted code; what this file adds on top of the Extism SDK:
 * - `alloc` counts the bytes a call asks the kernel for and stops the call past the memory cap (the SDK's
 *   kernel blocks live outside Wasm memory, where the module's declared maximum does not reach);
 * - `http_request` asks the main thread, which applies the tool's host policy, and waits for the answer on a
 *   shared buffer (the Extism ABI is synchronous);
 * - WASI, when a module imports it, is a shim without files, sockets, arguments or environment;
 * - the kernel is reset after every call, so nothing a call allocated outlives it.
 */
import createPlugin from '@extism/extism'
import type { CallContext, ExtismPluginOptions, Plugin } from '@extism/extism'
import { parentPort, workerData } from 'node:worker_threads'
import { wasiShim } from './wasi-shim.ts'
import type { FailureKind, HttpSlot, PluginDefinition, ToMain, ToWorker } from './protocol.ts'
import { HTTP_HEADER_BYTES, HTTP_STATE } from './protocol.ts'

/** Thrown by ark's host functions: the call ends with this kind of failure. */
class HostStop extends Error {
  readonly kind: FailureKind
  constructor(kind: FailureKind, message: string) {
    super(message)
    this.kind = kind
  }
}

interface Loaded {
  readonly id: number
  readonly definition: PluginDefinition
  plugin: Plugin | undefined
  /** The plugin's Wasm instance, for its memory (WASI, and telling an out-of-memory trap from others). */
  instance: WebAssembly.Instance | undefined
  /** Kernel bytes allocated by the current call. */
  allocated: number
  status: number
  /** Extism variables of the current call (var_set/var_get): key to block address. */
  readonly vars: Map<string, bigint>
  /** The limit the current call broke; once set, every host function refuses (see `stop`). */
  stopped: HostStop | undefined
  /** For the least-recently-used choice when a thread holds too many instances. */
  lastUsed: number
}

/** Instances one thread keeps; the least recently used beyond this is dropped (its memory with it). */
const MAX_INSTANCES = 16
/** Longest message a plugin's own error may put in front of the model. */
const MAX_ERROR_CHARS = 16 * 1024
let clock = 0

const plugins = new Map<number, Loaded>()
let httpSlot: HttpSlot | undefined
let send: (message: ToMain) => void = () => {}
const decoder = new TextDecoder()
const encoder = new TextEncoder()

type HostFunctions = NonNullable<ExtismPluginOptions['functions']>

function hostFunctions(entry: Loaded): HostFunctions {
  const { definition } = entry
  /** Counts host (kernel) bytes a call takes; past the cap the call stops. */
  const charge = (bytes: number): void => {
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      stop(entry, 'trap', `a host allocation of ${String(bytes)} bytes`)
    if (entry.allocated + bytes > definition.maxMemoryBytes) {
      stop(
        entry,
        'memory',
        `the plugin asked for ${String(entry.allocated + bytes)} bytes of host memory in one call, over its cap of ${String(definition.maxMemoryBytes)}`,
      )
    }
    entry.allocated += bytes
  }
  /** A host function that refuses once the call broke a limit, whatever the plugin did with the first refusal. */
  const guarded =
    <A extends unknown[], R>(fn: (ctx: CallContext, ...args: A) => R) =>
    (ctx: CallContext, ...args: A): R => {
      if (entry.stopped !== undefined) throw entry.stopped
      return fn(ctx, ...args)
    }
  const keyOf = (ctx: CallContext, addr: bigint): string | undefined => ctx.read(addr)?.string()
  const env = {
    alloc: guarded((ctx, n: bigint): bigint => {
      const size = Number(n)
      charge(size)
      return ctx.alloc(size)
    }),
    // Variables are kept per call by ark (the SDK's would point at blocks the reset after each call frees),
    // and their keys count against the memory cap.
    var_get: guarded((ctx, keyAddr: bigint): bigint => {
      const key = keyOf(ctx, keyAddr)
      return key === undefined ? 0n : (entry.vars.get(key) ?? 0n)
    }),
    var_set: guarded((ctx, keyAddr: bigint, valueAddr: bigint): void => {
      const key = keyOf(ctx, keyAddr)
      if (key === undefined) return
      if (valueAddr === 0n) entry.vars.delete(key)
      else {
        charge(key.length * 2)
        entry.vars.set(key, valueAddr)
      }
    }),
    // The SDK's own config_get copies the value into a new block on every call, uncounted: a plugin calling
    // it in a loop would grow host memory without bound.
    config_get: guarded((ctx, keyAddr: bigint): bigint => {
      const key = keyOf(ctx, keyAddr)
      if (key === undefined || !Object.hasOwn(definition.config, key)) return 0n
      const value = encoder.encode(definition.config[key])
      charge(value.byteLength)
      return value.byteLength === 0 ? 0n : ctx.store(value)
    }),
    http_request: guarded((ctx, requestAddr: bigint, bodyAddr: bigint): bigint => {
      const request = ctx.read(requestAddr)
      if (request === null) return stop(entry, 'trap', 'http_request: the request address is not a block')
      let spec: { url?: unknown; method?: unknown; headers?: unknown }
      try {
        spec = JSON.parse(request.string()) as typeof spec
      } catch {
        return stop(entry, 'trap', 'http_request: the request is not JSON')
      }
      const body = bodyAddr === 0n ? undefined : ctx.read(bodyAddr)?.bytes().slice()
      const response = httpThroughMain(entry, spec, body)
      entry.status = response.status
      charge(response.body.byteLength)
      if (response.body.byteLength === 0) return 0n
      return ctx.store(response.body)
    }),
    http_status_code: guarded((): number => entry.status),
    // A plugin's logs are its own business; forwarding them would let it flood the gateway's log.
    log_info: () => {},
    log_warn: () => {},
    log_debug: () => {},
    log_error: () => {},
  }
  const functions: HostFunctions = { 'extism:host/env': env }
  if (definition.wasi) {
    const names = WebAssembly.Module.imports(definition.module)
      .filter((i) => i.module === 'wasi_snapshot_preview1' && i.kind === 'function')
      .map((i) => i.name)
    functions.wasi_snapshot_preview1 = wasiShim(names, () => memoryOf(entry))
  }
  return functions
}

function memoryOf(entry: Loaded): WebAssembly.Memory | undefined {
  return entry.instance?.exports.memory as WebAssembly.Memory | undefined
}

/**
 * Ends the call for breaking a limit. The main thread is told at once and terminates this thread: Wasm with
 * exception handling can catch what a host function throws, so a throw alone would not stop it.
 */
function stop(entry: Loaded, kind: FailureKind, message: string): never {
  entry.stopped ??= new HostStop(kind, message)
  send({ t: 'stop', kind: entry.stopped.kind, message: entry.stopped.message })
  throw entry.stopped
}

function httpThroughMain(
  entry: Loaded,
  spec: { url?: unknown; method?: unknown; headers?: unknown },
  body: Uint8Array | undefined,
): { status: number; body: Uint8Array } {
  const slot = httpSlot
  if (slot === undefined) return stop(entry, 'denied', 'this sandbox has no network')
  if (typeof spec.url !== 'string') return stop(entry, 'trap', 'http_request: the request has no url')
  const headers: Record<string, string> = {}
  if (typeof spec.headers === 'object' && spec.headers !== null) {
    for (const [k, v] of Object.entries(spec.headers)) if (typeof v === 'string') headers[k] = v
  }
  const state = new Int32Array(slot.buffer, 0, 4)
  Atomics.store(state, HTTP_STATE.flag, 0)
  send({
    t: 'http',
    request: {
      url: spec.url,
      method: typeof spec.method === 'string' ? spec.method.toUpperCase() : 'GET',
      headers,
      ...(body === undefined ? {} : { body }),
    },
  })
  // The main thread's call timeout bounds this wait: it terminates the thread if the answer is late.
  Atomics.wait(state, HTTP_STATE.flag, 0)
  const kind = Atomics.load(state, HTTP_STATE.kind)
  const length = Atomics.load(state, HTTP_STATE.length)
  const bytes = new Uint8Array(slot.buffer, HTTP_HEADER_BYTES, length).slice()
  if (kind === 0) return { status: Atomics.load(state, HTTP_STATE.status), body: bytes }
  // A host not granted is a limit; a request that failed (refused, timed out) is the plugin's to handle.
  if (kind === 1) return stop(entry, 'denied', decoder.decode(bytes))
  throw new HostStop('error', decoder.decode(bytes))
}

async function instantiate(entry: Loaded): Promise<Plugin> {
  const plugin = await createPlugin(
    { wasm: [{ module: entry.definition.module }] },
    {
      useWasi: false,
      runInWorker: false,
      config: entry.definition.config,
      functions: hostFunctions(entry),
      logger: silentConsole,
    },
  )
  const instance = await plugin.getInstance()
  entry.instance = instance
  // A WASI reactor expects its initializer before any export is called; the SDK runs it only with its own WASI.
  const init = instance.exports._initialize
  if (entry.definition.wasi && typeof init === 'function') (init as () => void)()
  return plugin
}

const noop = (): void => {}
const silentConsole = { ...console, log: noop, info: noop, warn: noop, error: noop, debug: noop }

async function call(pluginId: number, fn: string, input: Uint8Array): Promise<ToMain> {
  const entry = plugins.get(pluginId)
  if (entry === undefined)
    return { t: 'fail', kind: 'error', message: `plugin ${String(pluginId)} is not loaded` }
  entry.allocated = 0
  entry.status = 0
  entry.vars.clear()
  entry.stopped = undefined
  entry.lastUsed = ++clock
  let result: ToMain
  try {
    if (entry.plugin === undefined) {
      entry.plugin = await instantiate(entry)
      evictBeyondLimit()
    }
    const output = await entry.plugin.call(fn, input)
    // Host functions set this during the call, out of the type checker's sight.
    const stopped = entry.stopped as HostStop | undefined
    if (stopped !== undefined) throw stopped
    const bytes = output === null ? new Uint8Array(0) : output.bytes()
    if (bytes.byteLength > entry.definition.maxOutputBytes) {
      return {
        t: 'fail',
        kind: 'too_large',
        message: `the plugin's output is ${String(bytes.byteLength)} bytes, over its limit of ${String(entry.definition.maxOutputBytes)}`,
      }
    }
    // Copied: the block belongs to the kernel, which is reset below.
    result = { t: 'done', output: bytes.slice() }
  } catch (err) {
    result = failure(err, entry)
  }
  await entry.plugin?.reset()
  // A trap or a broken limit may leave the instance in any state: the next call gets a new one. An error
  // the plugin reported itself, or an output refused for its size, leaves a sound instance.
  if (result.t === 'fail' && result.kind !== 'error' && result.kind !== 'too_large') await forget(entry)
  return result
}

async function forget(entry: Loaded): Promise<void> {
  const plugin = entry.plugin
  if (plugin === undefined) return
  entry.plugin = undefined
  entry.instance = undefined
  send({ t: 'evicted', id: entry.id })
  await plugin.close()
}

function evictBeyondLimit(): void {
  const live = [...plugins.values()].filter((e) => e.plugin !== undefined)
  if (live.length <= MAX_INSTANCES) return
  live.sort((a, b) => a.lastUsed - b.lastUsed)
  for (const e of live.slice(0, live.length - MAX_INSTANCES)) void forget(e)
}

function failure(err: unknown, entry: Loaded): ToMain {
  // The first limit broken is the story, whatever the plugin threw after catching it.
  if (entry.stopped !== undefined)
    return { t: 'fail', kind: entry.stopped.kind, message: entry.stopped.message }
  if (err instanceof HostStop) return { t: 'fail', kind: err.kind, message: err.message }
  const cap = entry.definition.maxMemoryBytes
  const size = memoryOf(entry)?.buffer.byteLength ?? 0
  // Language runtimes trap (or abort) when memory.grow is refused: at the cap, that is what happened.
  if (err instanceof WebAssembly.RuntimeError && size >= cap) {
    return {
      t: 'fail',
      kind: 'memory',
      message: `the plugin used all of its ${String(cap / 1048576)} MiB of memory and stopped (${err.message})`,
    }
  }
  if (err instanceof RangeError && /memory|allocation/i.test(err.message)) {
    return { t: 'fail', kind: 'memory', message: `the plugin ran out of memory: ${err.message}` }
  }
  if (err instanceof WebAssembly.RuntimeError) {
    return { t: 'fail', kind: 'trap', message: `the plugin trapped: ${err.message}` }
  }
  const message = err instanceof Error ? err.message : String(err)
  // The SDK turns an error the plugin set (Extism's error_set) into this prefix.
  const own = /^Plugin-originated error: ([\s\S]*)$/.exec(message)
  if (own !== null) {
    const text = own[1] ?? ''
    const limit = Math.min(MAX_ERROR_CHARS, entry.definition.maxOutputBytes)
    return {
      t: 'fail',
      kind: 'error',
      message:
        text.length <= limit ? text : `${text.slice(0, limit)}… (${String(text.length)} characters in all)`,
    }
  }
  return { t: 'fail', kind: 'trap', message: `the plugin failed: ${message}` }
}

function onMessage(message: ToWorker): void {
  switch (message.t) {
    case 'init':
      httpSlot = message.http
      return
    case 'plugin':
      plugins.set(message.id, {
        id: message.id,
        definition: message.definition,
        plugin: undefined,
        instance: undefined,
        allocated: 0,
        status: 0,
        vars: new Map(),
        stopped: undefined,
        lastUsed: 0,
      })
      return
    case 'drop': {
      const entry = plugins.get(message.id)
      plugins.delete(message.id)
      if (entry !== undefined) void forget(entry)
      return
    }
    case 'call':
      void call(message.plugin, message.fn, message.input).then(send)
      return
  }
}

if (parentPort === null) throw new Error('sandbox/worker.ts runs as a worker thread')
const port = parentPort
send = (m) => {
  port.postMessage(m)
}
onMessage({ t: 'init', ...(workerData as { http: HttpSlot | undefined }) })
port.on('message', onMessage)
// Everything above is imported and compiled: the pool may count this thread as warm.
send({ t: 'ready' })
