/**
 * The controller's HTTP client to the Kubernetes API: node:https with one keep-alive agent. Where the server
 * is and how to authenticate come from controller/kube/config.ts (kubeconfig files, the pod's service
 * account, or client-node for credential plugins). Not client-node's generated APIs: they build a new
 * connection pool (a new TLS handshake) for every call, which a controller writing hundreds of statuses and
 * Events a second cannot afford, and importing them costs about 78 MiB. Watches get their own agent: a
 * long-lived watch must not hold a socket that writes wait for.
 *
 * Credentials are re-read every minute (a projected service-account token rotates) and never reach logs or
 * errors: a KubeError carries the server's Status message, the method and the path, nothing else.
 */
import { Agent, request } from 'node:https'
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { createInterface } from 'node:readline'
import type { KubeConfig } from '@kubernetes/client-node'
import type { KubeAccess, LoadOptions } from './config.ts'
import { accessFromKubeConfig, loadKubeAccess } from './config.ts'

/** An error the API server answered with (its metav1.Status), or a transport failure (status 0). */
export class KubeError extends Error {
  readonly status: number
  readonly reason: string
  constructor(status: number, reason: string, message: string) {
    super(message)
    this.name = 'KubeError'
    this.status = status
    this.reason = reason
  }
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>
  readonly body?: unknown
  /** Default application/json; PATCH takes application/merge-patch+json or application/json-patch+json. */
  readonly contentType?: string
  readonly signal?: AbortSignal
  /** Per-request timeout (default 30 s). */
  readonly timeoutMs?: number
}

export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
  readonly object: KubeObject
}

/** The fields of any Kubernetes object this client and its callers read. */
export interface KubeObject {
  readonly apiVersion?: string
  readonly kind?: string
  readonly metadata?: {
    readonly name?: string
    readonly namespace?: string
    readonly uid?: string
    readonly resourceVersion?: string
    readonly generation?: number
    readonly creationTimestamp?: string
    readonly deletionTimestamp?: string
    readonly finalizers?: readonly string[]
    readonly labels?: Readonly<Record<string, string>>
    readonly annotations?: Readonly<Record<string, string>>
    readonly [field: string]: unknown
  }
  readonly [field: string]: unknown
}

export interface KubeList {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string }
  readonly items?: readonly KubeObject[]
}

const CREDENTIALS_TTL_MS = 60_000
/** A call's time limit when it names none (RequestOptions.timeoutMs). */
const DEFAULT_TIMEOUT_MS = 30_000

export class KubeClient {
  readonly server: URL
  /** The namespace of the kubeconfig's current context (in a cluster: the pod's own). */
  readonly namespace: string
  /** Where the configuration came from (a kubeconfig path, or 'in-cluster'), for logs. */
  readonly source: string
  readonly #access: KubeAccess
  readonly #agent: Agent | HttpAgent
  readonly #watchAgent: Agent | HttpAgent
  readonly #tls: boolean
  #headers: OutgoingHttpHeaders = {}
  #headersAt = 0
  #refreshing: Promise<OutgoingHttpHeaders> | undefined

  constructor(access: KubeAccess) {
    this.#access = access
    this.server = access.server
    this.namespace = access.namespace
    this.source = access.source
    this.#tls = access.server.protocol === 'https:'
    const common = { keepAlive: true, keepAliveMsecs: 30_000, ...access.tls }
    this.#agent = this.#tls ? new Agent({ ...common, maxSockets: 32 }) : new HttpAgent(common)
    this.#watchAgent = this.#tls ? new Agent(common) : new HttpAgent(common)
  }

  /** A client for the configuration loadKubeAccess finds (--kubeconfig, KUBECONFIG, ~/.kube, in-cluster). */
  static async connect(options: LoadOptions = {}): Promise<KubeClient> {
    return new KubeClient(await loadKubeAccess(options))
  }

  /**
   * Another client to the same server as the same user, with connection pools of its own: for calls that
   * must not wait behind this client's (the Lease renewals behind a burst of status writes).
   */
  withOwnConnections(): KubeClient {
    return new KubeClient(this.#access)
  }

  /** A client for a client-node KubeConfig that the caller already holds (tests, tools that have one). */
  static async fromKubeConfig(kc: KubeConfig): Promise<KubeClient> {
    return new KubeClient(await accessFromKubeConfig(kc))
  }

  /** One API call; resolves with the parsed body, rejects with a KubeError. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.#send(method, path, options, this.#agent)
    const text = await readAll(res)
    if (res.statusCode === undefined || res.statusCode >= 300)
      throw statusError(res.statusCode ?? 0, text, method, path)
    return (text === '' ? undefined : JSON.parse(text)) as T
  }

  /**
   * A watch: calls `onEvent` for every line until the server ends the stream (resolves) or the connection
   * fails (rejects). An ERROR event (410 Gone, ...) is delivered like any other: the caller decides.
   */
  async watch(
    path: string,
    query: Readonly<Record<string, string | number | boolean | undefined>>,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const res = await this.#send(
      'GET',
      path,
      { query: { ...query, watch: true }, signal, timeoutMs: 0 },
      this.#watchAgent,
    )
    if (res.statusCode !== 200) throw statusError(res.statusCode ?? 0, await readAll(res), 'WATCH', path)
    const lines = createInterface({ input: res, crlfDelay: Infinity })
    const ended = new Promise<void>((resolve, reject) => {
      res.on('error', reject)
      res.on('aborted', () => reject(new KubeError(0, 'Aborted', `the watch of ${path} was cut`)))
      // readline re-emits its input's errors: without a listener a cut connection would crash the process.
      lines.on('error', reject)
      lines.on('close', resolve)
    })
    lines.on('line', (line) => {
      if (line === '') return
      let event: WatchEvent
      try {
        event = JSON.parse(line) as WatchEvent
      } catch {
        return
      }
      onEvent(event)
    })
    await ended
  }

  close(): void {
    this.#agent.destroy()
    this.#watchAgent.destroy()
  }

  async #send(
    method: string,
    path: string,
    options: RequestOptions,
    agent: Agent | HttpAgent,
  ): Promise<IncomingMessage> {
    const started = Date.now()
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const timedOut = () =>
      new KubeError(0, 'Timeout', `${method} ${path} took longer than ${String(timeoutMs)} ms`)
    // A credential plugin that hangs must not hang the call: its read counts against the call's time (a
    // watch, which has none, still gives up on it after the default).
    const credentialsMs = timeoutMs > 0 ? timeoutMs : DEFAULT_TIMEOUT_MS
    const headers = await withinTime(
      this.#credentials(),
      credentialsMs,
      () =>
        new KubeError(
          0,
          'Timeout',
          `${method} ${path}: reading the credentials took longer than ${String(credentialsMs)} ms`,
        ),
    )
    // Under the server's own path, when it has one (a proxy's https://host/k8s/clusters/x).
    const url = new URL(`${this.server.pathname.replace(/\/+$/, '')}${path}`, this.server)
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v))
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const send = this.#tls ? request : httpRequest
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          agent,
          headers: {
            ...headers,
            accept: 'application/json',
            ...(body === undefined
              ? {}
              : {
                  'content-type': options.contentType ?? 'application/json',
                  'content-length': Buffer.byteLength(body),
                }),
          },
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        resolve,
      )
      // Counted from the call, not from when the pool hands out a socket: a call queued behind busy
      // sockets is late too (a Lease renewal must give up in time to step down cleanly). It runs until the
      // whole answer is read ('close'), so a body that stalls is cut as well.
      if (timeoutMs > 0) {
        const timer = setTimeout(
          () => {
            const err = timedOut()
            // A request still queued for a socket emits its error only once it gets one: reject now. An
            // answer already being read fails with this same error.
            reject(err)
            response?.destroy(err)
            req.destroy(err)
          },
          Math.max(0, timeoutMs - (Date.now() - started)),
        )
        let response: IncomingMessage | undefined
        req.once('response', (res: IncomingMessage) => (response = res))
        req.once('close', () => clearTimeout(timer))
      }
      req.on('error', (err: Error) =>
        reject(
          err instanceof KubeError
            ? err
            : new KubeError(0, 'Unreachable', `${method} ${url.pathname}: ${transportMessage(err)}`),
        ),
      )
      req.end(body)
    })
  }

  /** The headers, read again once a minute; calls that arrive meanwhile share one read (one plugin run). */
  #credentials(): Promise<OutgoingHttpHeaders> | OutgoingHttpHeaders {
    if (Date.now() - this.#headersAt < CREDENTIALS_TTL_MS) return this.#headers
    this.#refreshing ??= this.#access
      .headers()
      .then((headers) => {
        this.#headers = headers
        this.#headersAt = Date.now()
        return headers
      })
      .finally(() => {
        this.#refreshing = undefined
      })
    return this.#refreshing
  }
}

/** `promise`, or `timeout()` thrown once `ms` have passed first; the promise itself runs on (shared reads). */
function withinTime<T>(promise: Promise<T> | T, ms: number, timeout: () => Error): Promise<T> | T {
  if (!(promise instanceof Promise)) return promise
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    res.on('error', reject)
  })
}

function statusError(status: number, text: string, method: string, path: string): KubeError {
  let reason = 'Unknown'
  let message = text.slice(0, 500)
  try {
    const s = JSON.parse(text) as { reason?: unknown; message?: unknown }
    if (typeof s.reason === 'string') reason = s.reason
    if (typeof s.message === 'string') message = s.message
  } catch {
    // Not a metav1.Status: the text itself (bounded) says what went wrong.
  }
  return new KubeError(status, reason, `${method} ${path}: ${String(status)} ${reason}: ${message}`)
}

/** A transport error's message without anything a request carried (headers are never in it; URLs may be). */
function transportMessage(err: Error): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : err.message
}
