/**
 * The client of McKinsey ARK's memory service API: the service an ARK `Memory` resource's address points at
 * (ark-broker, formerly ark-cluster-memory, or anything that speaks its API, such as postgres-memory).
 *
 * Endpoints called, as ARK's own client calls them (mckinsey/agents-at-scale-ark,
 * `ark/executors/completions/memory_http.go` and `memory.go`; earlier `ark/internal/genai/memory_http.go`),
 * and as the service answers them (`services/ark-broker/ark-broker/src/http/routes/memory/index.ts`,
 * `handlers.ts`, `schemas.ts`, `src/brokers/pagination.ts`; `services/ark-cluster-memory/.../routes/memory.ts`):
 *
 * - `GET /messages?conversation_id=<id>&limit=1000[&cursor=<n>]` answers
 *   `{"items":[{"timestamp","conversation_id","query_id","message","sequence"}],"total","hasMore","nextCursor"}`,
 *   oldest first. ark-broker pages it (default 100, at most 1000 a page; `cursor` is the exclusive sequence
 *   number to continue after); ARK's Go client reads the first page only, this one follows `nextCursor` while
 *   `hasMore`, keeping the newest maxEntries. ark-cluster-memory answers `{"messages":[...same records]}` in
 *   one piece; both are read. `message` is an OpenAI chat message (ARK stores
 *   `openai.ChatCompletionMessageParamUnion`); A2A `{role, parts}` messages and `{role, content}` with an
 *   unknown role (read as the user's) are accepted as ARK's reader accepts them; a record that is no message
 *   is skipped.
 * - `POST /messages` with `{"conversation_id","query_id","messages":[...],"ttl_seconds"?}` (`ttl_seconds` is
 *   sent only when ttlSeconds > 0, as ARK omits it); any 2xx is success, the body (empty from ark-broker,
 *   `{"conversation_id"}` from ark-cluster-memory) is not read.
 * - `POST /conversations` (no body) answers `{"conversation_id":"<uuid>"}` (201): how ARK starts a conversation
 *   when a query names none (newConversation()).
 *
 * Headers: `Content-Type`/`Accept: application/json`, `User-Agent: ark-memory-client/1.0` (ARK's), then the
 * resource's `spec.headers`, which may override them. Credentials in the address (`http://user:pass@host`)
 * become a Basic `Authorization` header, since fetch refuses URLs that carry them. Neither they, nor header
 * values, nor the address itself appear in any error: errors name the memory, the method and path, and what
 * went wrong.
 */
import type { ChatMessage } from '../messages.ts'
import type { Fetch } from '../provider.ts'
import { decodeMessage } from './decode.ts'
import type { ConversationMemory, MemoryBounds } from './memory.ts'
import { MemoryUnavailableError, checkConversationId, conversationIdOrThrow, entryLimit } from './memory.ts'

/** ARK's default (ARK_MEMORY_HTTP_TIMEOUT_SECONDS=30). */
export const DEFAULT_TIMEOUT_MS = 30_000
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
/** ark-broker's largest page (MAX_LIMIT). */
export const PAGE_LIMIT = 1000
/** Pages one load may read: with PAGE_LIMIT, 100,000 records, past any sensible conversation. */
export const DEFAULT_MAX_PAGES = 100
const USER_AGENT = 'ark-memory-client/1.0'

export interface HttpMemoryOptions {
  /** How errors name this memory, e.g. `namespace/name`. */
  readonly name: string
  /** The service's base URL (the Memory's resolved address). */
  readonly address: string
  /** The Memory's `spec.headers`, resolved (values may be secrets). */
  readonly headers?: Readonly<Record<string, string>>
  readonly fetch: Fetch
  /** maxEntries applies on load (the newest are kept); ttlSeconds is sent to the service as `ttl_seconds`. */
  readonly bounds?: MemoryBounds
  /** Per call, body included (default 30 s). */
  readonly timeoutMs?: number
  /** The largest response body read (default 8 MiB). */
  readonly maxResponseBytes?: number
  /** Pages one load may read (default 100). */
  readonly maxPages?: number
}

/** A call's outcome that is no answer: the service took too long. */
const TIMED_OUT = Symbol('timed out')

export class HttpMemory implements ConversationMemory {
  readonly #name: string
  readonly #base: string
  readonly #headers: Headers
  readonly #fetch: Fetch
  readonly #limit: number
  readonly #ttlSeconds: number
  readonly #timeoutMs: number
  readonly #maxBytes: number
  readonly #maxPages: number

  constructor(options: HttpMemoryOptions) {
    this.#name = options.name
    this.#fetch = options.fetch
    const bounds = options.bounds ?? { maxEntries: 0, ttlSeconds: 0 }
    this.#limit = entryLimit(bounds)
    this.#ttlSeconds = Math.max(0, Math.floor(bounds.ttlSeconds))
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
    this.#maxPages = Math.max(1, options.maxPages ?? DEFAULT_MAX_PAGES)
    const { base, authorization } = this.#parseAddress(options.address)
    this.#base = base
    this.#headers = new Headers({
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': USER_AGENT,
    })
    if (authorization !== undefined) this.#headers.set('authorization', authorization)
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      try {
        this.#headers.set(name, value)
      } catch {
        // The Headers error quotes the value, which may be a secret: say which header, never what it holds.
        const shown = /^[!-~]{1,64}$/.test(name) ? `header ${name}` : 'a header'
        throw this.#error(`${shown} of the Memory has an invalid name or value`)
      }
    }
  }

  async load(conversation: string, signal: AbortSignal): Promise<ChatMessage[]> {
    const id = conversationIdOrThrow(conversation)
    let kept: ChatMessage[] = []
    let cursor: number | undefined
    for (let page = 1; ; page++) {
      const query = new URLSearchParams({ conversation_id: id, limit: String(PAGE_LIMIT) })
      if (cursor !== undefined) query.set('cursor', String(cursor))
      const body = await this.#call('GET', '/messages', query, undefined, signal)
      const { records, next } = this.#page(body)
      for (const r of records) {
        const m = recordMessage(r)
        if (m !== undefined) kept.push(m)
      }
      // Only the newest are kept: the window is cut back now and then, not on every record.
      if (kept.length > 2 * this.#limit) kept = kept.slice(-this.#limit)
      if (next === undefined) break
      if (cursor !== undefined && next <= cursor)
        throw this.#error('GET /messages answered a nextCursor that does not advance')
      if (page >= this.#maxPages)
        throw this.#error(`the conversation has more than ${String(this.#maxPages)} pages of messages`)
      cursor = next
    }
    return kept.length > this.#limit ? kept.slice(-this.#limit) : kept
  }

  async append(
    conversation: string,
    messages: readonly ChatMessage[],
    signal: AbortSignal,
    query?: string,
  ): Promise<void> {
    const id = conversationIdOrThrow(conversation)
    if (messages.length === 0) return
    const body = JSON.stringify({
      conversation_id: id,
      query_id: query ?? crypto.randomUUID(),
      messages,
      ...(this.#ttlSeconds > 0 ? { ttl_seconds: this.#ttlSeconds } : {}),
    })
    await this.#call('POST', '/messages', undefined, body, signal)
  }

  /** Asks the service for a new conversation id (`POST /conversations`), as ARK does for a query without one. */
  async newConversation(signal: AbortSignal): Promise<string> {
    const body = await this.#call('POST', '/conversations', undefined, undefined, signal, true)
    const id = isObject(body) ? body.conversation_id : undefined
    if (typeof id !== 'string' || checkConversationId(id) !== undefined)
      throw this.#error('POST /conversations answered no usable conversation_id')
    return id
  }

  close(): Promise<void> {
    return Promise.resolve()
  }

  /** One request; the parsed JSON body when `read` (GET reads, POST /messages does not). */
  async #call(
    method: 'GET' | 'POST',
    path: string,
    query: URLSearchParams | undefined,
    body: string | undefined,
    signal: AbortSignal,
    read = method === 'GET',
  ): Promise<unknown> {
    signal.throwIfAborted()
    const what = `${method} ${path}`
    const controller = new AbortController()
    // A cleared setTimeout rather than AbortSignal.timeout, which keeps a Deno process alive for its duration.
    const timer = setTimeout(() => controller.abort(TIMED_OUT), this.#timeoutMs)
    const onAbort = () => controller.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const url = `${this.#base}${path}${query === undefined ? '' : `?${query.toString()}`}`
      const res = await this.#fetch(url, {
        method,
        headers: this.#headers,
        ...(body === undefined ? {} : { body }),
        redirect: 'error',
        signal: controller.signal,
      })
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel()
        throw this.#error(
          `${what} answered a redirect (HTTP ${String(res.status)}), which ark does not follow`,
        )
      }
      if (!res.ok) {
        await res.body?.cancel()
        throw this.#error(`${what} answered HTTP ${String(res.status)}`)
      }
      if (!read) {
        await res.body?.cancel()
        return undefined
      }
      const text = await this.#text(res, what)
      try {
        return JSON.parse(text) as unknown
      } catch {
        throw this.#error(`${what} answered a body that is not JSON`)
      }
    } catch (err) {
      if (err instanceof MemoryUnavailableError) throw err
      if (signal.aborted) throw signal.reason
      if (controller.signal.aborted)
        throw this.#error(`${what} got no answer within ${String(this.#timeoutMs)} ms`)
      throw this.#error(`${what} failed: ${describe(err)}`)
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** The body as text, at most maxResponseBytes of it. */
  async #text(res: Response, what: string): Promise<string> {
    const tooLarge = () =>
      this.#error(`${what} answered more than ${String(this.#maxBytes)} bytes, the most ark reads`)
    const declared = Number(res.headers.get('content-length') ?? NaN)
    if (declared > this.#maxBytes) {
      await res.body?.cancel()
      throw tooLarge()
    }
    if (res.body === null) return ''
    // Response bodies are bytes; the DOM-less typings say `any`.
    const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader()
    const chunks: Uint8Array[] = []
    let total = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      if (total > this.#maxBytes) {
        await reader.cancel()
        throw tooLarge()
      }
      chunks.push(value)
    }
    const bytes = new Uint8Array(total)
    let at = 0
    for (const c of chunks) {
      bytes.set(c, at)
      at += c.byteLength
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    } catch {
      throw this.#error(`${what} answered a body that is not UTF-8`)
    }
  }

  /** The records of a GET /messages answer and the cursor of the next page, if there is one. */
  #page(body: unknown): { records: readonly unknown[]; next: number | undefined } {
    if (!isObject(body)) throw this.#error('GET /messages answered JSON that is not an object')
    // ark-broker answers `items`, ark-cluster-memory `messages`.
    const records = Array.isArray(body.items) ? body.items : body.messages
    if (!Array.isArray(records)) throw this.#error('GET /messages answered no list of items')
    if (body.hasMore !== true) return { records, next: undefined }
    const next = typeof body.nextCursor === 'string' ? Number(body.nextCursor) : body.nextCursor
    if (typeof next !== 'number' || !Number.isSafeInteger(next) || next < 0)
      throw this.#error('GET /messages answered hasMore without a usable nextCursor')
    return { records, next }
  }

  #parseAddress(address: string): { base: string; authorization: string | undefined } {
    let url: URL
    try {
      url = new URL(address)
    } catch {
      throw this.#error('its address is not a URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw this.#error(`its address is not an http(s) URL (${url.protocol})`)
    if (url.search !== '' || url.hash !== '')
      throw this.#error('its address has a query or fragment, which the memory API has no place for')
    let authorization: string | undefined
    if (url.username !== '' || url.password !== '') {
      const pair = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
      authorization = `Basic ${base64(pair)}`
      url.username = ''
      url.password = ''
    }
    return { base: url.href.replace(/\/+$/, ''), authorization }
  }

  #error(reason: string): MemoryUnavailableError {
    return new MemoryUnavailableError(this.#name, reason)
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A record's message (an object, or JSON text of one), or the record itself when it is a bare message. */
function recordMessage(r: unknown): ChatMessage | undefined {
  if (!isObject(r)) return undefined
  let m = r.message
  if (m === undefined && typeof r.role === 'string') m = r
  if (typeof m === 'string') {
    try {
      m = JSON.parse(m) as unknown
    } catch {
      return undefined
    }
  }
  return decodeMessage(m)
}

/** What a failed fetch says that is safe to repeat: an error code, never a message that may quote the URL. */
function describe(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined
  const code = isObject(cause) || cause instanceof Error ? (cause as { code?: unknown }).code : undefined
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code
  const messages = [err instanceof Error ? err.message : '', cause instanceof Error ? cause.message : '']
  if (messages.some((m) => /redirect/i.test(m)))
    return 'it answered with a redirect, which ark does not follow'
  return 'the request could not be sent or answered'
}

function base64(text: string): string {
  let binary = ''
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b)
  return btoa(binary)
}
