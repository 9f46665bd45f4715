/**
 * The sandbox: load a plugin once (modules.ts), call it many times on the plugin threads (pool.ts) under its
 * limits, with its HTTP requests checked against the hosts it was granted (net-policy.ts).
 */
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { CompiledModule, Fetch, ModuleSource } from './modules.ts'
import { ModuleCache, pagesFor } from './modules.ts'
import { NetDenied, NetPolicy } from './net-policy.ts'
import type { NetPolicyOptions } from './net-policy.ts'
import type { HttpAnswer } from './pool.ts'
import { SandboxError, ThreadPool } from './pool.ts'
import type { HttpRequestMessage } from './protocol.ts'
import { MAX_WASM32_PAGES, ModuleRejected, WASM_PAGE_BYTES } from './wasm-binary.ts'

export interface PluginLimits {
  /** Wall-clock budget of one call, waiting for a thread included. */
  readonly timeoutMs: number
  /** Cap of the module's Wasm memory, and of the host memory one call may allocate. */
  readonly memoryMiB: number
  readonly maxInputBytes: number
  readonly maxOutputBytes: number
}

export const DEFAULT_PLUGIN_LIMITS: PluginLimits = {
  timeoutMs: 5_000,
  memoryMiB: 64,
  maxInputBytes: 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
}

export interface PluginSpec {
  readonly source: ModuleSource
  /** The exported function a call runs. */
  readonly function: string
  /** Values the plugin reads with Extism's config_get. */
  readonly config?: Readonly<Record<string, string>>
  /** Hosts the plugin may reach (net-policy.ts patterns); none by default. */
  readonly allowedHosts?: readonly string[]
  readonly limits?: Partial<PluginLimits>
}

export interface SandboxOptions {
  /** Plugin threads at most (default 4). */
  readonly maxThreads?: number
  /** Where `builtin` modules are read (default plugins/dist/). */
  readonly builtinDir?: URL
  /** Downloads `url` modules. */
  readonly fetch?: Fetch
  /** Resolver for host checks, replaceable in tests. */
  readonly lookup?: NetPolicyOptions['lookup']
  /** Metrics go here when given. */
  readonly registry?: Registry
  /** Distinct plugin configurations kept registered with the threads (default 512). */
  readonly maxPlugins?: number
}

export interface SandboxedPlugin {
  readonly digest: string
  /** Runs the plugin's function on `input`; throws SandboxError saying what went wrong. */
  call(input: Uint8Array, options?: { readonly signal?: AbortSignal }): Promise<Uint8Array>
}

export class Sandbox {
  readonly #pool: ThreadPool
  readonly #modules: ModuleCache
  readonly #options: SandboxOptions
  readonly #metrics: SandboxMetrics | undefined
  /** Plugins by everything that makes an instance differ: thread-side instances are reused by later loads. */
  readonly #plugins = new Map<string, { readonly id: number; readonly plugin: SandboxedPlugin }>()

  constructor(options: SandboxOptions = {}) {
    this.#options = options
    this.#metrics = options.registry === undefined ? undefined : new SandboxMetrics(options.registry)
    const metrics = this.#metrics
    this.#pool = new ThreadPool({
      ...(options.maxThreads === undefined ? {} : { maxThreads: options.maxThreads }),
      ...(metrics === undefined
        ? {}
        : { onChange: (threads, instances) => metrics.alive(threads, instances) }),
    })
    this.#modules = new ModuleCache({
      ...(options.builtinDir === undefined ? {} : { builtinDir: options.builtinDir }),
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      ...(metrics === undefined ? {} : { onCompile: (hit) => metrics.load(hit ? 'hit' : 'miss') }),
    })
  }

  /**
   * The plugin, ready to call: read, checked, compiled (once per digest) and registered with the threads.
   * Throws ModuleRejected when it cannot run, with the reason: missing export, foreign imports, memory over
   * the cap, bad digest, not Wasm.
   */
  async load(spec: PluginSpec, signal?: AbortSignal): Promise<SandboxedPlugin> {
    const limits: PluginLimits = { ...DEFAULT_PLUGIN_LIMITS, ...definedOnly(spec.limits ?? {}) }
    if (limits.memoryMiB > MAX_MEMORY_MIB) {
      throw new ModuleRejected(
        `limits.memoryMiB ${String(limits.memoryMiB)} is over the ${String(MAX_MEMORY_MIB)} MiB a Wasm memory can address`,
      )
    }
    if (limits.timeoutMs > MAX_TIMEOUT_MS) {
      throw new ModuleRejected(`limits.timeoutMs ${String(limits.timeoutMs)} is over the limit of one hour`)
    }
    const hosts = spec.allowedHosts ?? []
    let policy: NetPolicy | undefined
    try {
      policy =
        hosts.length === 0
          ? undefined
          : new NetPolicy({
              allowedHosts: hosts,
              ...(this.#options.lookup === undefined ? {} : { lookup: this.#options.lookup }),
            })
    } catch (err) {
      throw new ModuleRejected(`allowedHosts: ${err instanceof Error ? err.message : String(err)}`)
    }
    let compiled: CompiledModule
    try {
      compiled = await this.#modules.load(spec.source, pagesFor(limits.memoryMiB), signal)
    } catch (err) {
      this.#metrics?.load('rejected')
      throw err
    }
    if (!compiled.exports.has(spec.function)) {
      this.#metrics?.load('rejected')
      const names = [...compiled.exports].filter((n) => !n.startsWith('_')).slice(0, 10)
      throw new ModuleRejected(
        `the module exports no function "${spec.function}"${names.length === 0 ? '' : ` (it exports: ${names.join(', ')})`}`,
      )
    }
    const config = spec.config ?? {}
    const key = JSON.stringify([compiled.digest, spec.function, config, hosts, limits])
    const known = this.#plugins.get(key)
    if (known !== undefined) {
      // Most recently used last: the oldest is the one dropped when there are too many.
      this.#plugins.delete(key)
      this.#plugins.set(key, known)
      return known.plugin
    }
    const definition = {
      module: compiled.module,
      config,
      maxMemoryBytes: limits.memoryMiB * 1024 * 1024,
      maxOutputBytes: limits.maxOutputBytes,
      wasi: compiled.wasi,
    }
    let id = this.#pool.define(definition)
    const pool = this.#pool
    const metrics = this.#metrics
    const http = (request: HttpRequestMessage, signal: AbortSignal, maxBytes: number): Promise<HttpAnswer> =>
      fetchFor(policy, request, signal, maxBytes, limits.timeoutMs)
    const fn = spec.function
    const plugin: SandboxedPlugin = {
      digest: compiled.digest,
      async call(input, options = {}) {
        if (input.byteLength > limits.maxInputBytes) {
          metrics?.call('too_large')
          throw new SandboxError(
            'too_large',
            `the input is ${String(input.byteLength)} bytes, over the plugin's limit of ${String(limits.maxInputBytes)}`,
          )
        }
        // Dropped from the threads to bound their number (MAX_PLUGINS): whoever still holds it re-registers.
        if (!pool.has(id)) id = pool.define(definition)
        try {
          const output = await pool.call(id, fn, input, {
            timeoutMs: limits.timeoutMs,
            signal: options.signal,
            http,
          })
          metrics?.call('ok')
          return output
        } catch (err) {
          metrics?.call(err instanceof SandboxError ? err.kind : 'error')
          throw err
        }
      },
    }
    this.#plugins.set(key, { id, plugin })
    if (this.#plugins.size > (this.#options.maxPlugins ?? MAX_PLUGINS)) {
      const [oldestKey, oldest] = this.#plugins.entries().next().value as [string, { id: number }]
      this.#plugins.delete(oldestKey)
      this.#pool.drop(oldest.id)
    }
    return plugin
  }

  close(): Promise<void> {
    return this.#pool.close()
  }
}

/** setTimeout's range ends at about 24.8 days; a tool call has no business near it. */
const MAX_TIMEOUT_MS = 3_600_000

/** All a 32-bit Wasm memory holds: 4096 MiB. */
const MAX_MEMORY_MIB = (MAX_WASM32_PAGES * WASM_PAGE_BYTES) / (1024 * 1024)

/** Distinct plugin configurations kept registered; a Secret rotated forever must not grow them forever. */
const MAX_PLUGINS = 512

async function fetchFor(
  policy: NetPolicy | undefined,
  request: HttpRequestMessage,
  signal: AbortSignal,
  maxBytes: number,
  timeoutMs: number,
): Promise<HttpAnswer> {
  if (policy === undefined) {
    throw new SandboxError(
      'denied',
      `${hostOf(request.url)} is not allowed: this tool grants no hosts (allowedHosts)`,
    )
  }
  try {
    const r = await policy.fetch(
      {
        url: request.url,
        method: request.method,
        headers: request.headers,
        ...(request.body === undefined ? {} : { body: request.body }),
      },
      { timeoutMs, maxResponseBytes: maxBytes, signal },
    )
    return { status: r.status, body: r.body }
  } catch (err) {
    if (err instanceof NetDenied) throw new SandboxError('denied', err.message)
    throw new SandboxError('error', err instanceof Error ? err.message : String(err))
  }
}

/** The host only: the rest of a URL (paths, queries) may carry secrets. */
function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'a URL that does not parse'
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

class SandboxMetrics {
  readonly #threads: Gauge
  readonly #instances: Gauge
  readonly #loads: Counter<'result'>
  readonly #calls: Counter<'outcome'>

  constructor(registry: Registry) {
    const registers = [registry]
    this.#threads = new Gauge({ name: 'ark_sandbox_threads', help: 'Plugin threads alive.', registers })
    this.#instances = new Gauge({
      name: 'ark_sandbox_instances',
      help: 'Plugin instances alive across the plugin threads.',
      registers,
    })
    this.#loads = new Counter({
      name: 'ark_sandbox_module_loads_total',
      help: 'Plugin module loads by result: hit (compile cache), miss (compiled), rejected.',
      labelNames: ['result'],
      registers,
    })
    this.#calls = new Counter({
      name: 'ark_sandbox_calls_total',
      help: 'Sandboxed calls by outcome: ok, error, timeout, denied, memory, trap, too_large.',
      labelNames: ['outcome'],
      registers,
    })
  }

  alive(threads: number, instances: number): void {
    this.#threads.set(threads)
    this.#instances.set(instances)
  }

  load(result: 'hit' | 'miss' | 'rejected'): void {
    this.#loads.labels(result).inc()
  }

  call(outcome: string): void {
    this.#calls.labels(outcome).inc()
  }
}
