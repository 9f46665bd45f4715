/**
 * List, then watch, one resource type, as client-go's Reflector does:
 * - the list is paged (`limit`/`continue`) and replaces whatever was delivered before (a relist after a
 *   410 Gone tells the consumer which objects went away while it was not watching);
 * - the watch starts at the list's resourceVersion, asks for bookmarks (so a quiet resource type still moves
 *   its resourceVersion forward and a reconnect does not fall out of etcd's window), and ends itself after a
 *   randomised 5 to 10 minutes so connections are spread over API server replicas;
 * - 410 Gone (the resourceVersion is too old) relists; any other error backs off (0.8 s doubling to 30 s,
 *   with jitter) and resumes from the last resourceVersion seen. It never gives up: a controller survives
 *   its API server being away.
 */
import type { KubeClient, KubeList, KubeObject, WatchEvent } from '../kube/client.ts'
import { KubeError } from '../kube/client.ts'

export interface ReflectorHandlers {
  /** A complete list: everything this reflector delivered before and is not in it is gone. */
  replace(items: readonly KubeObject[]): void
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject): void
  /** A failed list or watch; the reflector retries by itself. */
  error?(err: unknown): void
}

export interface ReflectorOptions {
  readonly pageSize?: number
  /** Shortest and longest watch before it is renewed (default 300 to 600 s). */
  readonly minWatchSeconds?: number
  readonly maxWatchSeconds?: number
  readonly maxBackoffMs?: number
  /** A field selector for both list and watch (`type!=kubernetes.io/service-account-token`). */
  readonly fieldSelector?: string
  /** A label selector for both list and watch (`app.kubernetes.io/managed-by=ark-controller`). */
  readonly labelSelector?: string
}

export class Reflector {
  readonly path: string
  readonly #client: KubeClient
  readonly #handlers: ReflectorHandlers
  readonly #options: ReflectorOptions
  readonly #stop = new AbortController()
  #resourceVersion = ''
  #synced: Promise<void>
  #markSynced!: () => void
  #running: Promise<void> | undefined

  constructor(client: KubeClient, path: string, handlers: ReflectorHandlers, options: ReflectorOptions = {}) {
    this.#client = client
    this.path = path
    this.#handlers = handlers
    this.#options = options
    this.#synced = new Promise((resolve) => (this.#markSynced = resolve))
  }

  /** Starts listing and watching; resolves once the first list has been delivered (HasSynced). */
  start(): Promise<void> {
    this.#running ??= this.#run()
    return this.#synced
  }

  /** The last resourceVersion seen (from a list, an event or a bookmark). */
  get resourceVersion(): string {
    return this.#resourceVersion
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    await this.#running
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    let backoff = 0
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === '') {
          await this.#list(signal)
          this.#markSynced()
        }
        const started = Date.now()
        await this.#watch(signal)
        // A watch that ran a while, or ended by the server's timeout, is healthy: the next failure starts
        // the backoff afresh.
        if (Date.now() - started > 1000) backoff = 0
        continue
      } catch (err) {
        if (this.#stopped) break
        if (err instanceof KubeError && err.status === 410) {
          this.#resourceVersion = ''
          continue
        }
        this.#handlers.error?.(err)
      }
      backoff = Math.min(backoff === 0 ? 800 : backoff * 2, this.#options.maxBackoffMs ?? 30_000)
      await sleep(backoff * (0.75 + Math.random() * 0.5), signal)
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const items: KubeObject[] = []
    let token: string | undefined
    let resourceVersion: string
    do {
      const page = await this.#client.request<KubeList>('GET', this.path, {
        query: {
          limit: this.#options.pageSize ?? 500,
          continue: token,
          fieldSelector: this.#options.fieldSelector,
          labelSelector: this.#options.labelSelector,
        },
        signal,
      })
      items.push(...(page.items ?? []))
      token = page.metadata?.continue === '' ? undefined : page.metadata?.continue
      resourceVersion = page.metadata?.resourceVersion ?? ''
    } while (token !== undefined)
    this.#resourceVersion = resourceVersion
    this.#handlers.replace(items)
  }

  async #watch(signal: AbortSignal): Promise<void> {
    const min = this.#options.minWatchSeconds ?? 300
    const max = this.#options.maxWatchSeconds ?? 600
    const cut = new AbortController()
    let failure: KubeError | undefined
    await this.#client
      .watch(
        this.path,
        {
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: true,
          fieldSelector: this.#options.fieldSelector,
          labelSelector: this.#options.labelSelector,
          timeoutSeconds: Math.round(min + Math.random() * (max - min)),
        },
        (e: WatchEvent) => {
          if (failure !== undefined) return
          if (e.type === 'ERROR') {
            // A metav1.Status inside the stream: 410 Gone (our resourceVersion left etcd's window) or worse.
            const status = e.object as { code?: number; reason?: string; message?: string }
            failure = new KubeError(
              status.code ?? 500,
              status.reason ?? 'Unknown',
              `watch ${this.path}: ${status.message ?? 'error'}`,
            )
            cut.abort()
            return
          }
          const rv = e.object.metadata?.resourceVersion
          if (e.type !== 'BOOKMARK') this.#handlers.event(e.type, e.object)
          if (rv !== undefined) this.#resourceVersion = rv
        },
        AbortSignal.any([signal, cut.signal]),
      )
      .catch((err: unknown) => {
        if (failure === undefined && !signal.aborted) throw err
      })
    if (failure !== undefined) throw failure
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
