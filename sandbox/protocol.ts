/** Messages between the pool (main thread) and a plugin thread (worker.ts). */

/** How a call failed; also the `outcome` label of the tool-call metrics. */
export type FailureKind = 'error' | 'timeout' | 'denied' | 'memory' | 'trap' | 'too_large'

/** What a thread needs to instantiate a plugin. Sent once per thread and plugin. */
export interface PluginDefinition {
  /** Compiled on the main thread, once per digest; structured clone shares it without recompiling. */
  readonly module: WebAssembly.Module
  readonly config: Readonly<Record<string, string>>
  /** Host (kernel) bytes one call may allocate. */
  readonly maxMemoryBytes: number
  readonly maxOutputBytes: number
  /** The module imports wasi_snapshot_preview1: give it the file-less shim. */
  readonly wasi: boolean
}

/**
 * The shared buffer through which the main thread answers a plugin's HTTP request while the plugin thread
 * waits (Atomics.wait): Int32 flag, kind (0 ok, 1 denied, 2 failed), status, length; then the body, or the
 * error message.
 */
export interface HttpSlot {
  readonly buffer: SharedArrayBuffer
}
export const HTTP_HEADER_BYTES = 16
export const HTTP_STATE = { flag: 0, kind: 1, status: 2, length: 3 } as const

export interface HttpRequestMessage {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: Uint8Array
}

export type ToWorker =
  | { readonly t: 'init'; readonly http: HttpSlot | undefined }
  | { readonly t: 'plugin'; readonly id: number; readonly definition: PluginDefinition }
  | { readonly t: 'drop'; readonly id: number }
  | { readonly t: 'call'; readonly plugin: number; readonly fn: string; readonly input: Uint8Array }

export type ToMain =
  | { readonly t: 'ready' }
  | { readonly t: 'done'; readonly output: Uint8Array }
  | { readonly t: 'fail'; readonly kind: FailureKind; readonly message: string }
  | { readonly t: 'http'; readonly request: HttpRequestMessage }
  /** The running call broke a limit: terminate the thread now (the plugin may be catching host errors). */
  | { readonly t: 'stop'; readonly kind: FailureKind; readonly message: string }
  /** The thread dropped its instance of a plugin (after a failure, or to stay within its instance count). */
  | { readonly t: 'evicted'; readonly id: number }
