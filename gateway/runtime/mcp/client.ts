/**
 * MCP client connections: one per MCP server (url, transport and headers) per process, shared by every agent
 * that uses the server, kept alive and refreshed for as long as one of them holds it.
 *
 * Built on the v1 SDK line, `@modelcontextprotocol/sdk` (1.32): its `Client` speaks protocol revisions
 * 2024-11-05 to 2025-11-25 (what servers in the wild serve), and it ships both client transports that users
 * name, streamable HTTP and the deprecated-but-alive SSE (seed 003 uses it). The split 2.x packages
 * (`@modelcontextprotocol/client` 2.4 and `/core`) add the stateless 2026-07-28 revision and still carry the
 * SSE transport, but they need zod 4.2 beside the zod 3 that the v1 SDK and our test server
 * (`@modelcontextprotocol/server-everything`, itself built on v1) use; v1 is also the `latest` tag of
 * `@modelcontextprotocol/sdk`. Moving to 2.x changes only this file.
 *
 * What the SDK leaves to its user, and this file does:
 * - A lost connection is invisible to the SDK's `Client`: neither transport calls `onclose` when the server
 *   goes away, the SSE transport's EventSource quietly reconnects into a new, uninitialized session, and the
 *   streamable transport stops retrying its event stream after two attempts. Here, the end of the event
 *   stream (seen through our own `fetch`), a call that fails in transport, or a periodic ping that fails
 *   makes the connection `failed`, and it reconnects with backoff until the server answers again.
 * - Sizes: the SDK reads any body whole. Our `fetch` bounds every JSON-RPC message (maxMessageBytes); a
 *   result within it is truncated to maxResultBytes for the model.
 * - `tools/list` and `tools/call` are read with the SDK's loose result schema and checked here, so one bad
 *   tool entry skips that tool (with a warning) instead of failing the whole list, and a result is never
 *   refused for a content kind the SDK does not know yet.
 * - Per-call signals: the SDK never removes the abort listener it adds to a request's signal, so each call
 *   gets its own AbortController, tied to the caller's signal for the call's duration only.
 * - Secrets: header values (and credentials in the url) are redacted from every error, warning, log line and
 *   result, and the url is only ever shown without its query.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import type * as ClientModule from '@modelcontextprotocol/sdk/client/index.js'
import type * as SseModule from '@modelcontextprotocol/sdk/client/sse.js'
import type * as StdioModule from '@modelcontextprotocol/sdk/client/stdio.js'
import type * as HttpModule from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { McpError } from '@modelcontextprotocol/sdk/types.js'
import type * as Types from '@modelcontextprotocol/sdk/types.js'
import { loadOnce } from '../../load-once.ts'
import type { Logger } from '../../log.ts'
import { silentLogger } from '../../log.ts'
import { knownSecrets, Redactor } from '../redactor.ts'
import type { ToolResult } from '../tools/tool.ts'
import type { McpTool } from './content.ts'
import { checkTool, describe, isValidationError, MAX_ERROR_CHARS, oneLine, toToolResult } from './content.ts'
import type { JsonRpcId } from './wire.ts'
import { bounded, mediaType, parseUrl, requestIdOf } from './wire.ts'
import { injectIntoHeaders } from '../../trace/tracing.ts'

export type { McpTool } from './content.ts'

/** Where an MCP server is and how to talk to it: what an MCPServer or an ArkAgent's mcpServers entry says. */
export interface McpEndpoint {
  /** How logs and errors name the server, e.g. `default/web-search` (an MCPServer) or `default/research-agent:web-search`. */
  readonly name: string
  /** The server's url (http and sse); empty for stdio. */
  readonly url: string
  /** stdio: a local program the connection starts (`ark dev` only), with no environment but the safe basics. */
  readonly transport: 'http' | 'sse' | 'stdio'
  /** stdio: the program and its arguments. */
  readonly command?: readonly string[]
  /** Resolved header values (may come from Secrets: never log them or put them in errors). */
  readonly headers: Readonly<Record<string, string>>
  /**
   * Connect + initialize + tools/list must finish within this (default 30_000). A connection shared by
   * several endpoints uses the value of the first one that acquired it; so do its pings.
   */
  readonly timeoutMs?: number
  /** Bound of one tools/call (default: timeoutMs). Each handle uses its own endpoint's value. */
  readonly toolCallTimeoutMs?: number
}

/** Where a connection stands: what the runtime shows in status and uses to build an agent's tool list. */
export type McpState =
  | { readonly status: 'connecting' }
  | {
      readonly status: 'ready'
      readonly tools: readonly McpTool[]
      /** Tools skipped or left out, and why (redacted); empty when the list was taken whole. */
      readonly warnings: readonly string[]
    }
  | {
      readonly status: 'failed'
      /** What failed and where, redacted: `connect to http://host/mcp: ECONNREFUSED`. */
      readonly error: string
      /** When the next attempt starts (it does on its own). */
      readonly retryInMs: number
    }

/** One user's hold on a shared connection (an agent's, per server it uses). */
export interface McpServerHandle {
  /** The endpoint this handle was acquired with (its name is the one this handle's errors use). */
  readonly endpoint: McpEndpoint
  state(): McpState
  /** Resolves with the state once the current connection attempt has settled (ready or failed), or at `signal`. */
  settled(signal?: AbortSignal): Promise<McpState>
  /** Called after every change of state or of the tool list (tools/list_changed, a reconnect). Returns an unsubscribe. */
  onChange(listener: (state: McpState) => void): () => void
  /**
   * tools/call. Never throws for the server's failures: they come back as a ToolResult with isError and an
   * outcome ('error', 'timeout', 'too_large', 'cancelled'). Arguments are sent as given. While the
   * connection is still connecting, the call waits for it (within its own time bound).
   */
  callTool(name: string, args: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<ToolResult>
  /** This user is done; the connection closes when no handle holds it. Idempotent. */
  release(): void
}

/** Limits and timings of every connection of one McpClients. */
export interface McpClientsOptions {
  /** Default 1000; a server advertising more is cut to this, with a warning in state.warnings. */
  readonly maxTools?: number
  /** Default 1 MiB; bigger results are truncated (outcome too_large, said in the content). */
  readonly maxResultBytes?: number
  /**
   * Default 64 MiB: the most one JSON-RPC message from a server may take (a response body, one event of an
   * event stream). Past it the message is dropped unread; a call whose result it was ends with too_large.
   */
  readonly maxMessageBytes?: number
  /**
   * Start stdio servers (a local command) when an endpoint asks for one. Default false: a process that reads
   * manifests from a cluster never runs a command one names; only `ark dev`, which runs the user's own files,
   * turns this on.
   */
  readonly stdio?: boolean
  /** Backoff between connection attempts: default 1 s doubling to 60 s, with ±20% jitter. */
  readonly reconnect?: { readonly initialMs?: number; readonly maxMs?: number }
  /**
   * Default 30 s (0: never): how often a ready connection pings its server, so that a server that went
   * away is noticed (and reconnected to) even when it offered no event stream and nobody calls it.
   */
  readonly pingIntervalMs?: number
  /**
   * Default 10 s (0: at once): how long a connection no handle holds stays open. An agent prepared again
   * (it changed, or its server's tool list did) acquires before its old preparation lets go, and a pool
   * restarted within this finds its connection still there.
   */
  readonly idleCloseMs?: number
  /** How ark introduces itself in `initialize` (default `{ name: 'ark', version: '0.1.0' }`). */
  readonly clientInfo?: { readonly name: string; readonly version: string }
  readonly log?: Logger
}

/** The connections of one process: what the runtime acquires MCP servers from. */
export class McpClients {
  readonly #connections = new Map<string, Connection>()
  readonly #options: Settings
  #closed = false

  constructor(options: McpClientsOptions = {}) {
    this.#options = {
      maxTools: positive(options.maxTools, 1000),
      maxResultBytes: positive(options.maxResultBytes, 1024 * 1024),
      maxMessageBytes: positive(options.maxMessageBytes, 64 * 1024 * 1024),
      initialMs: Math.max(0, options.reconnect?.initialMs ?? 1000),
      maxMs: Math.max(0, options.reconnect?.maxMs ?? 60_000),
      pingIntervalMs: Math.max(0, options.pingIntervalMs ?? 30_000),
      idleCloseMs: Math.max(0, options.idleCloseMs ?? 10_000),
      clientInfo: options.clientInfo ?? { name: 'ark', version: '0.1.0' },
      stdio: options.stdio === true,
      log: options.log ?? silentLogger,
    }
  }

  /**
   * The shared connection of this endpoint (keyed by url, transport and headers), connecting on first
   * acquire. Never throws for the server: a connection that cannot be made is a `failed` state.
   */
  acquire(endpoint: McpEndpoint): McpServerHandle {
    if (this.#closed) throw new Error('McpClients: acquire after close()')
    const key = keyOf(endpoint)
    let connection = this.#connections.get(key)
    if (connection === undefined) {
      const created = new Connection(endpoint, this.#options, () => {
        if (this.#connections.get(key) === created) this.#connections.delete(key)
      })
      connection = created
      this.#connections.set(key, created)
      created.start()
    }
    return connection.handle(endpoint)
  }

  /** Whether these connections start stdio servers (McpClientsOptions.stdio). */
  get stdio(): boolean {
    return this.#options.stdio
  }

  /** Every connection this process holds, for metrics: name, status, tool count. */
  servers(): readonly {
    readonly name: string
    readonly status: McpState['status']
    readonly tools: number
  }[] {
    return [...this.#connections.values()].map((c) => {
      const s = c.state
      return { name: c.name, status: s.status, tools: s.status === 'ready' ? s.tools.length : 0 }
    })
  }

  /** Closes every connection (handles still held then answer calls with an error). */
  async close(): Promise<void> {
    this.#closed = true
    const all = [...this.#connections.values()]
    this.#connections.clear()
    await Promise.all(all.map((c) => c.close()))
  }
}

// -------------------------------------------------------------------------------------------------------

interface Settings {
  readonly maxTools: number
  readonly maxResultBytes: number
  readonly maxMessageBytes: number
  readonly initialMs: number
  readonly maxMs: number
  readonly pingIntervalMs: number
  readonly idleCloseMs: number
  readonly clientInfo: { readonly name: string; readonly version: string }
  readonly log: Logger
  readonly stdio: boolean
}

const DEFAULT_TIMEOUT_MS = 30_000
/** tools/list_changed notifications that arrive within this are one refresh. */
const LIST_CHANGED_DEBOUNCE_MS = 50
/** A server that pages its tool list further than this is cut there (a cursor loop, or a hostile server). */
const MAX_LIST_PAGES = 100
/** Skipped tools named one by one in warnings; the rest are counted in one more line. */
const MAX_TOOL_WARNINGS = 20
/** What is kept of a body that comes with an HTTP error status (the SDK puts it in its error message). */
const MAX_ERROR_BODY_BYTES = 16 * 1024

/** Read through a call, so that a flag set by a callback during an await is not narrowed away. */
function isDirty(session: Session): boolean {
  return session.dirty
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? Math.floor(value) : fallback
}

/** A stdio server's target: no url; shown by its program alone (arguments may hold a token). */
function stdioTarget(command: readonly string[], allowed: boolean): ReturnType<typeof parseUrl> {
  const program = command[0]
  return {
    url: undefined,
    display: `stdio:${program ?? ''}`,
    error: !allowed
      ? 'a command (stdio) MCP server runs only under ark dev'
      : program === undefined || program === ''
        ? 'the command is empty'
        : undefined,
    authorization: undefined,
    // Not the arguments: redacting every short word (`-y`, `stdio`) from every log line would garble them.
    secrets: [],
  }
}

/** Connections are shared by url (or command), transport and header values (names are case-insensitive). */
function keyOf(endpoint: McpEndpoint): string {
  const headers = Object.entries(endpoint.headers)
    .map(([k, v]) => [k.toLowerCase(), v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify([endpoint.transport, endpoint.url, endpoint.command ?? [], headers])
}

/** A timer that does not keep the process alive (Node); Deno's numeric timers have no unref. */
function unref<T>(timer: T): T {
  ;(timer as { unref?: () => void }).unref?.()
  return timer
}

/** One live SDK client and its transport: one connection attempt. */
interface Session {
  readonly sdk: Sdk
  readonly gen: number
  readonly client: Client
  readonly transport: Transport
  /** Calls in flight, by JSON-RPC id (to find the call an oversized message answered). */
  readonly calls: Map<JsonRpcId, CallRecord>
  /** initialize and tools/list succeeded; only then do transport events mean the connection is lost. */
  live: boolean
  /** The last error the transport reported, for a connect attempt that then times out. */
  lastError: string | undefined
  /** A tools/list_changed arrived that no refresh has answered yet. */
  dirty: boolean
  refreshing: boolean
  probing: boolean
}

interface CallRecord {
  id: JsonRpcId | undefined
  /** Set when the server's answer to this call was larger than maxMessageBytes. */
  tooLarge: number | undefined
  readonly abort: () => void
}

/** Why a call's own AbortController fired. */
const TIMED_OUT = Symbol('timed out')
const CANCELLED = Symbol('cancelled')
const TOO_LARGE = Symbol('too large')
/** The SDK's ErrorCode.RequestTimeout and ErrorCode.ConnectionClosed (its types load with the SDK, below). */
const REQUEST_TIMEOUT = -32001
const CONNECTION_CLOSED = -32000

/**
 * The SDK's parts this client uses, loaded with the first connection: with the zod schemas of its types they
 * are about 20 MiB of a process (bench/ memory: a worker's RSS, 122 against 102 MiB), which one whose agents
 * have no MCP server never needs.
 */
interface Sdk {
  readonly Client: typeof ClientModule.Client
  /** Deprecated in MCP, still served (seed 003). */
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  readonly SSEClientTransport: typeof SseModule.SSEClientTransport
  readonly StdioClientTransport: typeof StdioModule.StdioClientTransport
  readonly StreamableHTTPClientTransport: typeof HttpModule.StreamableHTTPClientTransport
  readonly McpError: typeof McpError
  readonly ResultSchema: typeof Types.ResultSchema
  readonly ToolListChangedNotificationSchema: typeof Types.ToolListChangedNotificationSchema
}

let sdk: Sdk | undefined
// A failed load (a broken install) is tried again by the next connection.
const loadSdk = loadOnce(async (): Promise<Sdk> => {
  const [client, sse, stdio, http, types] = await Promise.all([
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/client/sse.js'),
    import('@modelcontextprotocol/sdk/client/stdio.js'),
    import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
  ])
  return (sdk = {
    Client: client.Client,
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- deprecated in MCP, still served (seed 003)
    SSEClientTransport: sse.SSEClientTransport,
    StdioClientTransport: stdio.StdioClientTransport,
    StreamableHTTPClientTransport: http.StreamableHTTPClientTransport,
    McpError: types.McpError,
    ResultSchema: types.ResultSchema,
    ToolListChangedNotificationSchema: types.ToolListChangedNotificationSchema,
  })
})

/** A JSON-RPC error as the SDK raises it; there is none before the SDK is loaded. */
function isMcpError(err: unknown): err is McpError {
  return sdk !== undefined && err instanceof sdk.McpError
}

/**
 * An error the SDK made up itself: a request's timeout (it carries `{ timeout }`) or the connection closing
 * under a request. Their codes alone do not tell them from a server's error: servers answer with -32000
 * (the SDK's ConnectionClosed) for anything.
 */
function sdkMade(err: unknown): 'timeout' | 'closed' | undefined {
  if (!isMcpError(err)) return undefined
  const data: unknown = err.data
  if (err.code === REQUEST_TIMEOUT && typeof data === 'object' && data !== null && 'timeout' in data)
    return 'timeout'
  if (err.code === CONNECTION_CLOSED && data === undefined && err.message.endsWith(': Connection closed'))
    return 'closed'
  return undefined
}

class Connection {
  /** The name of the endpoint that opened the connection (logs and servers() use it). */
  readonly name: string
  readonly #endpoint: McpEndpoint
  readonly #settings: Settings
  readonly #onClosed: () => void
  readonly #timeoutMs: number
  readonly #url: URL | undefined
  /** The url without credentials, query or fragment: how errors and logs show it. */
  readonly #display: string
  /** A configuration that no attempt can get past (a bad url or header); attempts fail with it. */
  readonly #configError: string | undefined
  readonly #headers: readonly (readonly [string, string])[]
  readonly #redactor: Redactor
  readonly #forgetSecrets: () => void
  readonly #listeners = new Set<(state: McpState) => void>()
  readonly #waiters = new Set<() => void>()
  #state: McpState = { status: 'connecting' }
  /** Bumped by every attempt and by every loss: callbacks of an older session see a newer gen and stop. */
  #gen = 0
  #session: Session | undefined
  #refs = 0
  #closed = false
  /** Consecutive failed attempts (the backoff exponent). */
  #failures = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #pingTimer: ReturnType<typeof setTimeout> | undefined
  #refreshTimer: ReturnType<typeof setTimeout> | undefined
  /** Set while no handle holds the connection: it closes when this fires. */
  #idleTimer: ReturnType<typeof setTimeout> | undefined
  #lastLogged: string | undefined
  /** The call whose tools/call request the SDK is about to send (see the send wrapper in #open). */
  #capture: CallRecord | undefined

  constructor(endpoint: McpEndpoint, settings: Settings, onClosed: () => void) {
    this.name = endpoint.name
    this.#endpoint = endpoint
    this.#settings = settings
    this.#onClosed = onClosed
    this.#timeoutMs = positive(endpoint.timeoutMs, DEFAULT_TIMEOUT_MS)
    const target =
      endpoint.transport === 'stdio'
        ? stdioTarget(endpoint.command ?? [], settings.stdio)
        : parseUrl(endpoint.url)
    this.#url = target.url
    this.#display = target.display
    const headers: [string, string][] = []
    let configError = target.error
    const check = new Headers()
    for (const [name, value] of Object.entries(endpoint.headers)) {
      try {
        check.set(name, value)
        headers.push([name, value])
      } catch {
        // Never the value: it may be a Secret's.
        configError ??= `header ${JSON.stringify(name.slice(0, 64))} has an invalid name or value`
      }
    }
    if (target.authorization !== undefined && !check.has('authorization')) {
      headers.push(['authorization', target.authorization])
    }
    this.#headers = headers
    this.#configError = configError
    // A value and each of its words: a server that echoes `Bearer <token>` back may echo the token alone.
    const values = Object.values(endpoint.headers)
    this.#redactor = Redactor.of([...values, ...values.flatMap((v) => v.split(/\s+/)), ...target.secrets])
    // The logger redacts what every live provider and connection holds, whoever writes the line.
    this.#forgetSecrets = knownSecrets.add(this.#redactor)
  }

  get state(): McpState {
    return this.#state
  }

  start(): void {
    void this.#connect()
  }

  handle(endpoint: McpEndpoint): McpServerHandle {
    this.#refs++
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    return new Handle(endpoint, this)
  }

  /** A handle let go: after the last one, the connection closes once it has stayed unused for idleCloseMs. */
  unref(): void {
    this.#refs--
    if (this.#refs > 0) return
    const idle = this.#settings.idleCloseMs
    if (idle === 0) {
      void this.close()
      return
    }
    this.#idleTimer ??= unref(
      setTimeout(() => {
        this.#idleTimer = undefined
        if (this.#refs <= 0) void this.close()
      }, idle),
    )
  }

  subscribe(listener: (state: McpState) => void): () => void {
    // A wrapper per subscription, so that the same function subscribed twice is called twice and
    // unsubscribed once per call of the returned function.
    const entry = (state: McpState) => listener(state)
    this.#listeners.add(entry)
    return () => this.#listeners.delete(entry)
  }

  settled(signal?: AbortSignal): Promise<McpState> {
    if (this.#state.status !== 'connecting' || this.#closed || signal?.aborted === true) {
      return Promise.resolve(this.#state)
    }
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve(this.#state)
      }
      this.#waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#gen++
    this.#clearTimers()
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    const session = this.#session
    this.#session = undefined
    this.#listeners.clear()
    for (const wake of [...this.#waiters]) wake()
    this.#onClosed()
    if (session !== undefined) await this.#dispose(session, true)
    this.#forgetSecrets()
    this.#settings.log.debug('MCP connection closed', { server: this.name, url: this.#display })
  }

  // ----------------------------------------------------------------------------------------- connecting

  async #connect(): Promise<void> {
    if (this.#closed) return
    const gen = ++this.#gen
    this.#setState({ status: 'connecting' })
    if (
      this.#configError !== undefined ||
      (this.#url === undefined && this.#endpoint.transport !== 'stdio')
    ) {
      this.#fail(gen, this.#configError ?? 'the url is not valid')
      return
    }
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), this.#timeoutMs)
    let phase = 'connect to'
    let session: Session | undefined
    try {
      const loaded = await untilAborted(loadSdk(), deadline.signal)
      if (gen !== this.#gen) {
        clearTimeout(timer)
        return
      }
      session = this.#open(loaded, gen, this.#url)
      this.#session = session
      await untilAborted(
        session.client.connect(session.transport, { signal: deadline.signal, timeout: this.#timeoutMs }),
        deadline.signal,
      )
      phase = 'list the tools of'
      const listed = await untilAborted(this.#listTools(session, deadline.signal), deadline.signal)
      clearTimeout(timer)
      if (gen !== this.#gen) return
      session.live = true
      this.#failures = 0
      this.#schedulePing(session)
      if (session.dirty) this.#scheduleRefresh(session)
      this.#logOnce('info', 'MCP server ready', {
        tools: listed.tools.length,
        warnings: listed.warnings.length,
      })
      this.#setState({ status: 'ready', tools: listed.tools, warnings: listed.warnings })
    } catch (err) {
      clearTimeout(timer)
      if (gen !== this.#gen) return
      const detail = deadline.signal.aborted
        ? `no answer within ${this.#timeoutMs} ms${session?.lastError === undefined ? '' : ` (last error: ${session.lastError})`}`
        : describe(err)
      this.#fail(gen, `${phase} ${this.#display}: ${detail}`)
    }
  }

  /** A new SDK client and transport, wired to this connection; not yet connected. */
  #open(sdk: Sdk, gen: number, url: URL | undefined): Session {
    const client = new sdk.Client(
      { name: this.#settings.clientInfo.name, version: this.#settings.clientInfo.version },
      { capabilities: {} },
    )
    const fetchFn = this.#fetch(() => session)
    const command = this.#endpoint.command ?? []
    const transport: Transport =
      this.#endpoint.transport === 'stdio' || url === undefined
        ? // The SDK's default environment (PATH, HOME, USER, ...), never this process's keys and tokens.
          new sdk.StdioClientTransport({
            command: command[0] ?? '',
            args: command.slice(1),
            stderr: 'ignore',
          })
        : this.#endpoint.transport === 'sse'
          ? new sdk.SSEClientTransport(url, { fetch: fetchFn })
          : new sdk.StreamableHTTPClientTransport(url, { fetch: fetchFn })
    const session: Session = {
      sdk,
      gen,
      client,
      transport,
      calls: new Map(),
      live: false,
      lastError: undefined,
      dirty: false,
      refreshing: false,
      probing: false,
    }
    const send = transport.send.bind(transport)
    transport.send = (message, options) => {
      const record = this.#capture
      if (record !== undefined && 'method' in message && message.method === 'tools/call' && 'id' in message) {
        this.#capture = undefined
        record.id = message.id
        session.calls.set(message.id, record)
      }
      return send(message, options)
    }
    client.onerror = (error) => {
      if (session.gen !== this.#gen) return
      session.lastError = this.#redact(describe(error))
      this.#settings.log.debug('MCP transport error', {
        server: this.name,
        url: this.#display,
        error: session.lastError,
      })
    }
    client.onclose = () => {
      if (session.live && session.gen === this.#gen) this.#lost(session, 'the transport closed')
    }
    client.setNotificationHandler(sdk.ToolListChangedNotificationSchema, () => {
      if (session.gen !== this.#gen) return
      session.dirty = true
      if (session.live) this.#scheduleRefresh(session)
    })
    return session
  }

  /** Every tool the server lists (all pages, up to maxTools), checked one by one. */
  async #listTools(session: Session, signal: AbortSignal): Promise<{ tools: McpTool[]; warnings: string[] }> {
    if (session.client.getServerCapabilities()?.tools === undefined) {
      return {
        tools: [],
        warnings: ['the server offers no tools (its initialize answer has no tools capability)'],
      }
    }
    const max = this.#settings.maxTools
    const tools: McpTool[] = []
    const skipped: string[] = []
    const names = new Set<string>()
    let listed = 0
    let cursor: string | undefined
    let more = false
    for (let page = 0; ; page++) {
      const result = await session.client.request(
        { method: 'tools/list', params: cursor === undefined ? {} : { cursor } },
        session.sdk.ResultSchema,
        { signal, timeout: this.#timeoutMs },
      )
      const entries = result.tools
      if (!Array.isArray(entries)) throw new Error('the tools/list answer has no tools array')
      for (const entry of entries) {
        listed++
        if (tools.length >= max) continue
        const checked = checkTool(entry, listed, names)
        if (typeof checked === 'string') skipped.push(checked)
        else tools.push(checked)
      }
      const next = result.nextCursor
      if (typeof next !== 'string' || next === '' || next === cursor) break
      if (tools.length >= max || page + 1 >= MAX_LIST_PAGES) {
        more = true
        break
      }
      cursor = next
    }
    const warnings = skipped.slice(0, MAX_TOOL_WARNINGS)
    if (skipped.length > MAX_TOOL_WARNINGS) {
      warnings.push(`${skipped.length - MAX_TOOL_WARNINGS} more tools skipped for the reasons above`)
    }
    if (listed > tools.length + skipped.length || more) {
      warnings.push(
        `the server lists ${listed}${more ? ' or more' : ''} tools; ark keeps the first ${max} (maxTools) and leaves the rest out`,
      )
    }
    return { tools, warnings: warnings.map((w) => this.#redact(w)) }
  }

  // -------------------------------------------------------------------------------- losing, retrying

  /** The attempt failed, or the connection was lost: state failed, and another attempt after a backoff. */
  #fail(gen: number, message: string): void {
    if (gen !== this.#gen || this.#closed) return
    this.#gen++
    const session = this.#session
    this.#session = undefined
    this.#clearTimers()
    if (session !== undefined) void this.#dispose(session, false)
    const retryInMs = this.#backoff(this.#failures++)
    const error = this.#redact(oneLine(message, MAX_ERROR_CHARS * 2))
    this.#retryTimer = unref(
      setTimeout(() => {
        this.#retryTimer = undefined
        void this.#connect()
      }, retryInMs),
    )
    this.#logOnce('warn', 'MCP server unavailable', { error, retryInMs })
    this.#setState({ status: 'failed', error, retryInMs })
  }

  #lost(session: Session, why: string): void {
    this.#fail(session.gen, `connection to ${this.#display} lost: ${why}`)
  }

  /** Something suggests the server went away (its event stream ended, a call failed in transport): ping it. */
  #probe(session: Session, why: string): void {
    if (!session.live || session.probing || session.gen !== this.#gen) return
    session.probing = true
    session.client
      .ping({ timeout: this.#timeoutMs })
      .then(
        () => {
          if (session.gen === this.#gen) this.#schedulePing(session)
        },
        (err: unknown) => {
          if (session.gen !== this.#gen) return
          // A JSON-RPC error from the server (a server without ping) still proves it is there.
          if (isMcpError(err) && sdkMade(err) === undefined) {
            this.#schedulePing(session)
            return
          }
          this.#lost(session, `${why}, and a ping failed: ${describe(err)}`)
        },
      )
      .finally(() => {
        session.probing = false
      })
  }

  #schedulePing(session: Session): void {
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer)
    this.#pingTimer = undefined
    const every = this.#settings.pingIntervalMs
    if (every === 0) return
    this.#pingTimer = unref(
      setTimeout(() => {
        this.#pingTimer = undefined
        this.#probe(session, 'keepalive')
      }, every),
    )
  }

  #scheduleRefresh(session: Session): void {
    if (this.#refreshTimer !== undefined) return
    this.#refreshTimer = unref(
      setTimeout(() => {
        this.#refreshTimer = undefined
        void this.#refresh(session)
      }, LIST_CHANGED_DEBOUNCE_MS),
    )
  }

  /** tools/list_changed: the list again; a server that cannot list its tools any more is reconnected to. */
  async #refresh(session: Session): Promise<void> {
    if (session.gen !== this.#gen || !session.live) return
    if (session.refreshing) return
    session.refreshing = true
    session.dirty = false
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), this.#timeoutMs)
    try {
      const listed = await untilAborted(this.#listTools(session, deadline.signal), deadline.signal)
      if (session.gen !== this.#gen) return
      const before = this.#state
      const same =
        before.status === 'ready' &&
        JSON.stringify([before.tools, before.warnings]) === JSON.stringify([listed.tools, listed.warnings])
      if (!same) {
        this.#settings.log.info('MCP tools changed', { server: this.name, tools: listed.tools.length })
        this.#setState({ status: 'ready', tools: listed.tools, warnings: listed.warnings })
      }
    } catch (err) {
      if (session.gen !== this.#gen) return
      const detail = deadline.signal.aborted ? `no answer within ${this.#timeoutMs} ms` : describe(err)
      this.#lost(session, `tools/list after tools/list_changed: ${detail}`)
    } finally {
      clearTimeout(timer)
      session.refreshing = false
      // A tools/list_changed that came while this refresh ran: once more.
      if (isDirty(session) && session.gen === this.#gen) this.#scheduleRefresh(session)
    }
  }

  #backoff(failures: number): number {
    const { initialMs, maxMs } = this.#settings
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30))
    return Math.round(Math.min(maxMs, base * (0.8 + Math.random() * 0.4)))
  }

  #clearTimers(): void {
    for (const t of [this.#retryTimer, this.#pingTimer, this.#refreshTimer])
      if (t !== undefined) clearTimeout(t)
    this.#retryTimer = this.#pingTimer = this.#refreshTimer = undefined
  }

  /** Closes a session's client and transport; `polite` ends a streamable HTTP session with DELETE first. */
  async #dispose(session: Session, polite: boolean): Promise<void> {
    session.live = false
    const transport = session.transport
    if (
      polite &&
      transport instanceof session.sdk.StreamableHTTPClientTransport &&
      transport.sessionId !== undefined
    ) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        transport.terminateSession().catch(() => {}),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.min(this.#timeoutMs, 2000)))),
      ])
      clearTimeout(timer)
    }
    // Client.close closes the transport it connected; a transport whose start failed is closed here.
    await session.client.close().catch(() => {})
    await transport.close().catch(() => {})
  }

  #setState(state: McpState): void {
    this.#state = state
    if (state.status !== 'connecting') for (const wake of [...this.#waiters]) wake()
    for (const listener of [...this.#listeners]) {
      try {
        listener(state)
      } catch (err) {
        this.#settings.log.error('MCP state listener threw', {
          server: this.name,
          error: this.#redact(describe(err)),
        })
      }
    }
  }

  /** Logs a transition at `level` the first time its text is seen in a row; repeats go to debug. */
  #logOnce(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void {
    const text = `${msg} ${typeof fields.error === 'string' ? fields.error : ''}`
    const at = text === this.#lastLogged ? 'debug' : level
    this.#lastLogged = text
    this.#settings.log[at](msg, { server: this.name, url: this.#display, ...fields })
  }

  #redact(text: string): string {
    return this.#redactor.text(text)
  }

  // ---------------------------------------------------------------------------------------------- calls

  /** The session once it is ready: now, after the attempt in progress, or undefined (failed, or `signal`). */
  async #ready(signal: AbortSignal): Promise<Session | undefined> {
    if (this.#state.status === 'connecting') await this.settled(signal)
    return this.#state.status === 'ready' && this.#session?.live === true ? this.#session : undefined
  }

  async call(
    endpoint: McpEndpoint,
    tool: string,
    args: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<ToolResult> {
    const server = endpoint.name
    const limit = positive(endpoint.toolCallTimeoutMs ?? endpoint.timeoutMs, DEFAULT_TIMEOUT_MS)
    const fail = (content: string, outcome: ToolResult['outcome']): ToolResult => ({
      content: this.#redact(content),
      isError: true,
      outcome,
    })
    if (signal.aborted)
      return fail(`the call of ${tool} on the MCP server ${server} was cancelled`, 'cancelled')
    if (this.#closed)
      return fail(`the MCP server ${server} is no longer connected (ark closed its MCP connections)`, 'error')
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(TIMED_OUT), limit)
    const onAbort = () => controller.abort(CANCELLED)
    signal.addEventListener('abort', onAbort, { once: true })
    const record: CallRecord = {
      id: undefined,
      tooLarge: undefined,
      abort: () => controller.abort(TOO_LARGE),
    }
    let session: Session | undefined
    try {
      session = await this.#ready(controller.signal)
      if (session === undefined) {
        const reason: unknown = controller.signal.reason
        if (reason === CANCELLED)
          return fail(`the call of ${tool} on the MCP server ${server} was cancelled`, 'cancelled')
        if (reason === TIMED_OUT) {
          return fail(
            `the MCP server ${server} was still connecting after ${limit} ms; ${tool} was not called`,
            'timeout',
          )
        }
        const s = this.#state
        const why =
          s.status === 'failed' ? `${s.error}; ark retries in ${s.retryInMs} ms` : 'the connection is closed'
        return fail(`the MCP server ${server} is not connected (${why}); ${tool} was not called`, 'error')
      }
      this.#capture = record
      let pending: Promise<Record<string, unknown>>
      try {
        pending = session.client.request(
          { method: 'tools/call', params: { name: tool, arguments: args } },
          session.sdk.ResultSchema,
          {
            signal: controller.signal,
            // A backstop only: our own timer fires first, and says which call it was.
            timeout: limit + 1000,
          },
        )
      } finally {
        this.#capture = undefined
      }
      const result = await pending
      return toToolResult(result, server, tool, this.#settings.maxResultBytes, this.#redactor)
    } catch (err) {
      const reason: unknown = controller.signal.reason
      if (record.tooLarge !== undefined || reason === TOO_LARGE) {
        return fail(
          `the MCP server ${server} answered ${tool} with a message of more than ${this.#settings.maxMessageBytes} bytes (maxMessageBytes); ark dropped it unread`,
          'too_large',
        )
      }
      if (reason === TIMED_OUT)
        return fail(`the MCP server ${server} did not answer ${tool} within ${limit} ms`, 'timeout')
      if (reason === CANCELLED)
        return fail(`the call of ${tool} on the MCP server ${server} was cancelled`, 'cancelled')
      const made = sdkMade(err)
      if (made === 'timeout') {
        return fail(`the MCP server ${server} did not answer ${tool} within ${limit} ms`, 'timeout')
      }
      if (made === 'closed') {
        return fail(
          `the connection to the MCP server ${server} was lost during ${tool}; ark reconnects`,
          'error',
        )
      }
      if (isMcpError(err)) {
        return fail(`the MCP server ${server} returned an error for ${tool}: ${mcpErrorText(err)}`, 'error')
      }
      if (isValidationError(err)) {
        return fail(
          `the MCP server ${server} answered ${tool} with an invalid result: ${describe(err)}`,
          'error',
        )
      }
      if (session !== undefined) this.#probe(session, `a call of ${tool} failed`)
      return fail(`the MCP server ${server} could not be reached for ${tool}: ${describe(err)}`, 'error')
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      if (record.id !== undefined) session?.calls.delete(record.id)
    }
  }

  // ------------------------------------------------------------------------------------------ the wire

  /**
   * The transports' fetch: adds the endpoint's headers to every request (the POSTs, the SSE and streamable
   * event streams, the DELETE), bounds every message a server sends (maxMessageBytes), and tells the
   * connection when its event stream ends.
   */
  #fetch(sessionOf: () => Session): FetchLike {
    return async (input, init) => {
      const headers = new Headers(init?.headers)
      // The SDK's own headers (accept, content-type, mcp-session-id, mcp-protocol-version) win.
      for (const [name, value] of this.#headers) if (!headers.has(name)) headers.set(name, value)
      // The tool call's span, when tracing is on: the server's spans join the caller's trace.
      injectIntoHeaders(headers)
      const response = await fetch(input, { ...init, headers })
      const body = response.body
      if (body === null || response.status < 200 || response.status > 599) return response
      const session = sessionOf()
      const method = (init?.method ?? 'GET').toUpperCase()
      const eventStream = mediaType(response.headers.get('content-type')) === 'text/event-stream'
      const out = new Headers(response.headers)
      out.delete('content-length')
      let limited: ReadableStream<Uint8Array>
      if (!response.ok) {
        limited = bounded(body, { max: MAX_ERROR_BODY_BYTES, events: false, truncate: true })
      } else {
        const requestId = method === 'POST' ? requestIdOf(init?.body) : undefined
        const stream = method === 'GET' && eventStream
        limited = bounded(body, {
          max: this.#settings.maxMessageBytes,
          events: eventStream,
          truncate: false,
          id: requestId,
          onOversize: (bytes, id) => this.#oversize(session, id, bytes),
          onEnd: stream ? (error) => this.#streamEnded(session, error) : undefined,
        })
      }
      return new Response(limited, { status: response.status, statusText: response.statusText, headers: out })
    }
  }

  #oversize(session: Session, id: JsonRpcId | undefined, bytes: number): void {
    const record = id === undefined ? undefined : session.calls.get(id)
    this.#settings.log.warn('MCP server sent an oversized message', {
      server: this.name,
      url: this.#display,
      bytes,
      maxMessageBytes: this.#settings.maxMessageBytes,
      call: record === undefined ? undefined : id,
    })
    if (record !== undefined) {
      record.tooLarge = bytes
      record.abort()
    }
  }

  #streamEnded(session: Session, error: unknown): void {
    if (!session.live || session.gen !== this.#gen) return
    const why = error === undefined ? 'the event stream ended' : `the event stream failed: ${describe(error)}`
    // An SSE session lives as long as its stream; a streamable HTTP server may end its stream and keep the
    // session (the SDK opens a new stream), so there a ping decides.
    if (this.#endpoint.transport === 'sse') this.#lost(session, why)
    else this.#probe(session, why)
  }
}

class Handle implements McpServerHandle {
  readonly endpoint: McpEndpoint
  readonly #connection: Connection
  readonly #unsubscribes = new Set<() => void>()
  #released = false

  constructor(endpoint: McpEndpoint, connection: Connection) {
    this.endpoint = endpoint
    this.#connection = connection
  }

  state(): McpState {
    return this.#connection.state
  }

  settled(signal?: AbortSignal): Promise<McpState> {
    return this.#connection.settled(signal)
  }

  onChange(listener: (state: McpState) => void): () => void {
    if (this.#released) return () => {}
    const off = this.#connection.subscribe(listener)
    const unsubscribe = () => {
      off()
      this.#unsubscribes.delete(unsubscribe)
    }
    this.#unsubscribes.add(unsubscribe)
    return unsubscribe
  }

  callTool(name: string, args: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<ToolResult> {
    if (this.#released) {
      return Promise.resolve({
        content: `the MCP server ${this.endpoint.name} is no longer connected (its handle was released)`,
        isError: true,
        outcome: 'error',
      })
    }
    return this.#connection.call(this.endpoint, name, args, signal)
  }

  release(): void {
    if (this.#released) return
    this.#released = true
    for (const off of [...this.#unsubscribes]) off()
    this.#connection.unref()
  }
}

// ----------------------------------------------------------------------------------------------- helpers

/** Resolves or rejects as `promise` does, or rejects when `signal` aborts (the promise is left to itself). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'))
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err instanceof Error ? err : new Error(String(err)))
      },
    )
  })
}

/** A server's JSON-RPC error: its message (without the SDK's `MCP error <code>: ` prefix) and its code. */
function mcpErrorText(err: McpError): string {
  const message = err.message.replace(/^MCP error -?\d+: /, '')
  return oneLine(`${message} (code ${err.code})`, MAX_ERROR_CHARS)
}
