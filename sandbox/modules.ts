/**
 * Where plugin modules come from, and the compile cache. A module is read (built-in, file, ConfigMap bytes, or
 * an https download checked against its sha256), capped in memory (wasm-binary.ts), compiled once per digest
 * and checked against what ark's host provides, so that a module that cannot run is refused when it is
 * loaded, with the reason, and never at the first call.
 */
import { readFile, stat } from 'node:fs/promises'
import { ModuleRejected, WASM_PAGE_BYTES, capMemory } from './wasm-binary.ts'

export type ModuleSource =
  /** A plugin shipped with ark: plugins/dist/<name>.wasm, built by `npm run build:plugins`. */
  | { readonly builtin: string }
  | { readonly path: string }
  /** Bytes read elsewhere (a ConfigMap's binaryData); `name` says where, in messages. */
  | { readonly bytes: Uint8Array; readonly name: string }
  | { readonly url: string; readonly sha256: string }

export interface CompiledModule {
  /** sha256 of the module as it was given, hex. */
  readonly digest: string
  readonly module: WebAssembly.Module
  /** It imports WASI, which it gets as a file-less shim. */
  readonly wasi: boolean
  readonly exports: ReadonlySet<string>
}

export type Fetch = (url: string, init?: { signal?: AbortSignal }) => Promise<Response>

export interface ModuleCacheOptions {
  /** Where built-in plugins live (default plugins/dist/ beside this folder). */
  readonly builtinDir?: URL
  /** Downloads `url` modules (default the global fetch). */
  readonly fetch?: Fetch
  /** Largest module accepted (default 64 MiB). */
  readonly maxModuleBytes?: number
  readonly onCompile?: (hit: boolean) => void
}

/** Host functions ark provides in Extism's kernel namespace: a module importing anything else cannot link. */
const KERNEL = new Set([
  'alloc',
  'free',
  'length',
  'length_unsafe',
  'load_u8',
  'load_u64',
  'store_u8',
  'store_u64',
  'input_offset',
  'input_length',
  'input_load_u8',
  'input_load_u64',
  'output_set',
  'error_set',
  'config_get',
  'var_get',
  'var_set',
  'http_request',
  'http_status_code',
  'log_info',
  'log_warn',
  'log_debug',
  'log_error',
])

const BUILTIN_DIR = new URL('../plugins/dist/', import.meta.url)
const BUILTIN_NAME = /^[a-z0-9][a-z0-9-]*$/

export class ModuleCache {
  readonly #options: ModuleCacheOptions
  /** By digest and memory cap: the same bytes under another cap are another module. */
  readonly #compiled = new Map<string, Promise<CompiledModule>>()
  /** Downloads by their promised sha256: fetched once. */
  readonly #downloads = new Map<string, Promise<Uint8Array>>()

  constructor(options: ModuleCacheOptions = {}) {
    this.#options = options
  }

  /** The module, compiled under a memory cap of `maxPages`; throws ModuleRejected with the reason. */
  async load(source: ModuleSource, maxPages: number, signal?: AbortSignal): Promise<CompiledModule> {
    const bytes = await this.#read(source, signal)
    const digest = await sha256(bytes)
    const key = `${digest}/${String(maxPages)}`
    let compiled = this.#compiled.get(key)
    this.#options.onCompile?.(compiled !== undefined)
    if (compiled === undefined) {
      compiled = compile(bytes, digest, maxPages)
      this.#compiled.set(key, compiled)
      bound(this.#compiled)
      // A refusal is not cached: the reason may be fixed by the next version of the same source.
      compiled.catch(() => this.#compiled.delete(key))
    }
    return compiled
  }

  async #read(source: ModuleSource, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const max = this.#options.maxModuleBytes ?? 64 * 1024 * 1024
    let bytes: Uint8Array
    if ('bytes' in source) bytes = source.bytes
    else if ('builtin' in source) {
      if (!BUILTIN_NAME.test(source.builtin)) {
        throw new ModuleRejected(`"${source.builtin}" is not a built-in plugin name`)
      }
      const file = new URL(`${source.builtin}.wasm`, this.#options.builtinDir ?? BUILTIN_DIR)
      bytes = await readModuleFile(
        file,
        `built-in plugin ${source.builtin}`,
        'run `npm run build:plugins`',
        max,
      )
    } else if ('path' in source) {
      bytes = await readModuleFile(source.path, source.path, 'check the path and the file', max)
    } else {
      bytes = await this.#download(source.url, source.sha256.toLowerCase(), signal, max)
    }
    if (bytes.byteLength > max) {
      throw new ModuleRejected(
        `the module is ${String(bytes.byteLength)} bytes, over the limit of ${String(max)}`,
      )
    }
    return bytes
  }

  #download(url: string, sha: string, signal: AbortSignal | undefined, max: number): Promise<Uint8Array> {
    if (!url.startsWith('https://')) {
      return Promise.reject(new ModuleRejected(`${url}: modules are downloaded over https only`))
    }
    const key = `${sha} ${url}`
    let pending = this.#downloads.get(key)
    if (pending === undefined) {
      pending = (async () => {
        const fetch = this.#options.fetch ?? globalThis.fetch
        // Not the caller's signal: the download is shared by every load of the same module.
        const timeout = AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS)
        let response: Response
        try {
          response = await fetch(url, { signal: timeout })
        } catch (err) {
          throw new ModuleRejected(
            `${url} could not be downloaded: ${err instanceof Error ? err.message : String(err)}`,
          )
        }
        if (!response.ok) throw new ModuleRejected(`${url} answered HTTP ${String(response.status)}`)
        const bytes = await readCapped(response, max, url)
        const actual = await sha256(bytes)
        if (actual !== sha) {
          throw new ModuleRejected(`${url} has sha256 ${actual}, not the ${sha} the Tool requires`)
        }
        return bytes
      })()
      this.#downloads.set(key, pending)
      pending.catch(() => this.#downloads.delete(key))
      bound(this.#downloads)
    }
    return signal === undefined ? pending : untilAborted(pending, signal)
  }
}

/** The file, when it is a regular file no larger than `max`: a device or a huge file is never read. */
/** Modules kept compiled, and downloads kept; the oldest go first (a ConfigMap updated forever). */
const MAX_CACHED = 128
const DOWNLOAD_TIMEOUT_MS = 60_000

function bound(map: Map<string, unknown>): void {
  for (const key of map.keys()) {
    if (map.size <= MAX_CACHED) return
    map.delete(key)
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
    }
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** The body, refused as soon as it passes `max` bytes. */
async function readCapped(response: Response, max: number, url: string): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? '0')
  const tooBig = (n: number) =>
    new ModuleRejected(`${url} is ${String(n)} bytes or more, over the limit of ${String(max)}`)
  if (declared > max) throw tooBig(declared)
  if (response.body === null) return new Uint8Array(0)
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > max) throw tooBig(size)
    chunks.push(chunk)
  }
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

async function readModuleFile(
  file: string | URL,
  what: string,
  advice: string,
  max: number,
): Promise<Uint8Array> {
  const name = typeof file === 'string' ? file : file.pathname
  try {
    const info = await stat(file)
    if (!info.isFile()) throw new ModuleRejected(`${what}: ${name} is not a regular file`)
    if (info.size > max) {
      throw new ModuleRejected(
        `${what}: ${name} is ${String(info.size)} bytes, over the limit of ${String(max)}`,
      )
    }
    return new Uint8Array(await readFile(file))
  } catch (err) {
    if (err instanceof ModuleRejected) throw err
    const code = (err as { code?: string }).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : String(err)
    throw new ModuleRejected(`${what}: ${name} ${why}; ${advice}`)
  }
}

async function compile(bytes: Uint8Array, digest: string, maxPages: number): Promise<CompiledModule> {
  const capped = capMemory(bytes, maxPages)
  let module: WebAssembly.Module
  try {
    module = await WebAssembly.compile(capped.bytes)
  } catch (err) {
    throw new ModuleRejected(
      `not a valid WebAssembly module: ${err instanceof Error ? err.message : String(err)}`,
    )
  }
  let wasi = false
  for (const i of WebAssembly.Module.imports(module)) {
    if (i.module === 'wasi_snapshot_preview1' && i.kind === 'function') wasi = true
    else if (i.module === 'extism:host/env' && i.kind === 'function' && KERNEL.has(i.name)) continue
    else {
      throw new ModuleRejected(
        `imports ${i.kind} ${i.module}.${i.name}, which ark does not provide (plugins may import Extism's kernel functions and WASI)`,
      )
    }
  }
  const exports = new Set(
    WebAssembly.Module.exports(module)
      .filter((e) => e.kind === 'function')
      .map((e) => e.name),
  )
  return { digest, module, wasi, exports }
}

export async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
  let hex = ''
  for (const b of hash) hex += b.toString(16).padStart(2, '0')
  return hex
}

export function pagesFor(mebibytes: number): number {
  return Math.max(1, Math.floor((mebibytes * 1024 * 1024) / WASM_PAGE_BYTES))
}
