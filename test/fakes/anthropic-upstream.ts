/**
 * A fake Anthropic Messages API for tests and benchmarks: real HTTP on 127.0.0.1, Anthropic's wire format
 * (Message objects, the SSE event sequence, `{type: 'error', error: {type, message}}` bodies), and ark's mock
 * model behind it, so the real `@anthropic-ai/sdk` can drive whole tool loops offline.
 *
 * - POST /v1/messages translates the request into ark's conversation, runs the mock model on it (each line of
 *   the last user message like `calculator {"expression": "2+3"}` is one tool turn) and answers as Anthropic
 *   would, streamed when `stream: true`. A tool_choice that forces a tool gets a tool_use of it: its input is
 *   the JSON after an `answer:` line of the last user message, else the smallest value its schema allows.
 * - It refuses what the real API refuses and ark could get wrong: no max_tokens, unknown fields, empty text
 *   blocks, tool_use without its tool_result right after (and the reverse), tools named twice, a forced tool
 *   that is not offered.
 * - GET /v1/models/:id answers a model, or 404 for ids that start with `missing`.
 * - `next(...)` scripts the next answers of POST /v1/messages: any status, a delay, a broken stream, a hang.
 * - `keys` non-empty: other keys get a 401 whose message echoes the key (some upstreams do), so that tests can
 *   prove ark redacts it.
 *
 * As a process, for benchmarks: `node test/fakes/anthropic-upstream.ts --port N` prints `listening <url>`.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { JsonSchema } from '../../controller/api/index.ts'
import type { ChatMessage, ToolCall, ToolDefinition } from '../../gateway/runtime/messages.ts'
import { createMockProvider, exampleOf } from '../../gateway/runtime/providers/mock.ts'
import type { EchoForm, EchoReply } from './echo.ts'
import { encodeEcho, writeSplit } from './echo.ts'
import { headersOf, isRecord, readBody, sendJson, sleep } from './http.ts'

export interface RecordedCall {
  method: string
  path: string
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>
  /** The parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  body: unknown
  /** The client went away before the answer was complete. */
  closedEarly: boolean
}

export type FakeReply =
  /** Any HTTP answer; without a body, Anthropic's error body for that status. A string body is sent as is. */
  | { status: number; body?: unknown; headers?: Record<string, string> }
  /** The default answer, after a delay (a slow upstream). */
  | { delayMs: number }
  /** Some valid events (3 unless told), then a data line that is not JSON, or a socket closed mid-answer. */
  | { brokenStream: 'malformed' | 'cut'; afterEvents?: number }
  /** No answer at all until the client goes away. */
  | { hang: true }
  /** The credential the request carried, echoed back (echo.ts); by default the x-api-key value. */
  | EchoReply

export interface FakeUpstream {
  /** Base URL to give the SDK, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string
  /** Every request, in order. */
  readonly calls: RecordedCall[]
  /** Accepted API keys (x-api-key or Authorization: Bearer); empty: any, or none. */
  readonly keys: Set<string>
  /** Answers for the next POST /v1/messages calls, in order; then the default behaviour again. */
  next(...replies: FakeReply[]): void
  /** Set: GET /v1/models answers 401 with the credential echoed in this form (a probe meets an echoing upstream). */
  modelsEcho: { readonly form: EchoForm; readonly header?: string } | undefined
  close(): Promise<void>
}

export interface FakeOptions {
  /** 0 (the default): a free port. */
  readonly port?: number
  /** The API keys accepted from the start (see `FakeUpstream.keys`). */
  readonly keys?: readonly string[]
}

type Json = Record<string, unknown>

interface Block {
  readonly type: string
  readonly [key: string]: unknown
}

interface WireTool {
  readonly name: string
  readonly schema: JsonSchema
}

interface WireRequest {
  readonly model: string
  readonly stream: boolean
  readonly conversation: ChatMessage[]
  readonly tools: WireTool[]
  readonly choice: { readonly type: string; readonly name?: string }
  readonly stopSequences: readonly string[]
  /** The text of the last user message, where `answer:` lines are looked for. */
  readonly said: string
}

/** Fields the Messages API knows; it refuses others ("Extra inputs are not permitted"). */
const KNOWN_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'tools',
  'tool_choice',
  'stream',
  'temperature',
  'top_p',
  'top_k',
  'stop_sequences',
  'metadata',
  'thinking',
  'service_tier',
  'output_config',
  'container',
  'cache_control',
  'inference_geo',
  'speed',
  'diagnostics',
])

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  409: 'conflict_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
}

const DEFAULT_AFTER_EVENTS = 3

class Refused extends Error {
  override readonly name = 'Refused'
}

export async function startFakeAnthropic(options: FakeOptions = {}): Promise<FakeUpstream> {
  const calls: RecordedCall[] = []
  const keys = new Set<string>(options.keys)
  const pending: FakeReply[] = []
  let modelsEcho: FakeUpstream['modelsEcho']
  const mock = createMockProvider({ provider: 'mock', model: 'fake-anthropic', headers: {}, properties: {} })
  let serial = 0

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.destroyed) return
      if (!res.headersSent) sendError(res, 500, 'api_error', `fake upstream failed: ${String(err)}`)
      else res.destroy()
    })
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake')
    const call: RecordedCall = {
      method: req.method ?? 'GET',
      path: url.pathname,
      headers: headersOf(req),
      body: undefined,
      closedEarly: false,
    }
    calls.push(call)
    let cutByUs = false
    const gone = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished && !cutByUs) call.closedEarly = true
      gone.abort()
    })
    const raw = await readBody(req)
    call.body = raw === '' ? undefined : parseJson(raw)

    const key = call.headers['x-api-key'] ?? bearer(call.headers.authorization)
    if (keys.size > 0 && (key === undefined || !keys.has(key))) {
      sendError(res, 401, 'authentication_error', `invalid x-api-key: ${key ?? '(none)'}`)
      return
    }
    if (call.path.startsWith('/v1/') && call.headers['anthropic-version'] === undefined) {
      sendError(res, 400, 'invalid_request_error', 'anthropic-version: header is required')
      return
    }

    if (modelsEcho !== undefined && call.method === 'GET' && call.path.startsWith('/v1/models')) {
      const v = encodeEcho(call.headers[modelsEcho.header ?? 'x-api-key'] ?? '', modelsEcho.form)
      sendError(res, 401, v, `invalid x-api-key: ${v}`)
      return
    }
    if (call.method === 'GET' && call.path === '/v1/models') {
      sendJson(res, 200, {
        data: [modelInfo('claude-fake-1')],
        has_more: false,
        first_id: null,
        last_id: null,
      })
      return
    }
    const model = /^\/v1\/models\/([^/]+)$/.exec(call.path)
    if (call.method === 'GET' && model !== null) {
      const id = decodeURIComponent(model[1] ?? '')
      if (id.startsWith('missing')) sendError(res, 404, 'not_found_error', `model: ${id}`)
      else sendJson(res, 200, modelInfo(id))
      return
    }
    if (call.method !== 'POST' || call.path !== '/v1/messages') {
      sendError(res, 404, 'not_found_error', `Not found: ${call.method} ${call.path}`)
      return
    }

    const reply = pending.shift()
    if (reply !== undefined && 'status' in reply) {
      sendScripted(res, reply)
      return
    }
    if (reply !== undefined && 'hang' in reply) return // The 'close' listener records when the client gives up.
    if (raw !== '' && call.body === raw) {
      sendError(res, 400, 'invalid_request_error', 'The request body is not valid JSON')
      return
    }
    let request: WireRequest
    try {
      request = readRequest(call.body)
    } catch (err) {
      if (!(err instanceof Refused)) throw err
      sendError(res, 400, 'invalid_request_error', err.message)
      return
    }
    if (reply !== undefined && 'echo' in reply) {
      await answerEcho(
        res,
        reply,
        encodeEcho(call.headers[reply.header ?? 'x-api-key'] ?? '', reply.form),
        request,
      )
      return
    }
    if (reply !== undefined && 'delayMs' in reply) {
      await sleep(reply.delayMs, gone.signal)
      if (gone.signal.aborted) return
    }
    const id = ++serial
    const message = await answer(request, id, gone.signal)
    if (gone.signal.aborted) return
    const broken = reply !== undefined && 'brokenStream' in reply ? reply : undefined
    if (!request.stream) {
      const text = JSON.stringify(message)
      if (broken === undefined) {
        sendJson(res, 200, message, { 'request-id': `req_fake_${String(id)}` })
        return
      }
      const half = text.slice(0, Math.floor(text.length / 2))
      if (broken.brokenStream === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(half)
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(text.length) })
      cutByUs = true
      res.write(half, () => res.destroy())
      return
    }

    const events = eventsOf(message)
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'request-id': `req_fake_${String(id)}`,
    })
    const upTo =
      broken === undefined
        ? events.length
        : Math.max(0, Math.min(broken.afterEvents ?? DEFAULT_AFTER_EVENTS, events.length - 1))
    for (let i = 0; i < upTo; i++) {
      const e = events[i] as Json
      res.write(`event: ${String(e.type)}\ndata: ${JSON.stringify(e)}\n\n`)
    }
    if (broken === undefined) res.end()
    else if (broken.brokenStream === 'malformed') {
      res.end(
        'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"te\n\n',
      )
    } else {
      cutByUs = true
      // Written first, so the client has the valid events before the connection drops.
      res.write(': cut\n\n', () => res.destroy())
    }
  }

  /** Runs the mock model on the request and builds the Message that answers it. */
  async function answer(request: WireRequest, id: number, signal: AbortSignal): Promise<Json> {
    const tools: ToolDefinition[] =
      request.choice.type === 'none'
        ? []
        : request.tools.map((t) => ({ type: 'function', function: { name: t.name, parameters: t.schema } }))
    const completion = await mock.complete({ messages: request.conversation, tools, signal })
    let text = completion.message.content ?? ''
    let calls: readonly ToolCall[] = completion.message.tool_calls ?? []
    const forced = forcedTool(request, calls)
    if (forced !== undefined) {
      calls = [
        {
          id: 'forced',
          type: 'function',
          function: {
            name: forced.name,
            arguments: JSON.stringify(answerLine(request.said) ?? exampleOf(forced.schema)),
          },
        },
      ]
      text = ''
    }
    let stopReason = calls.length > 0 ? 'tool_use' : 'end_turn'
    let stopSequence: string | null = null
    if (calls.length === 0) {
      let cut = -1
      for (const s of request.stopSequences) {
        const at = text.indexOf(s)
        if (at >= 0 && (cut < 0 || at < cut)) {
          cut = at
          stopSequence = s
        }
      }
      if (cut >= 0) {
        text = text.slice(0, cut)
        stopReason = 'stop_sequence'
      }
    }
    const content: Json[] = []
    if (text !== '') content.push({ type: 'text', text })
    calls.forEach((c, i) => {
      content.push({
        type: 'tool_use',
        id: `toolu_fake${String(id)}_${String(i)}`,
        name: c.function.name,
        input: inputOf(c.function.arguments),
      })
    })
    return {
      id: `msg_fake${String(id)}`,
      type: 'message',
      role: 'assistant',
      model: request.model,
      content,
      stop_reason: stopReason,
      stop_sequence: stopSequence,
      usage: {
        input_tokens: completion.usage.promptTokens,
        output_tokens: completion.usage.completionTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${String(port)}`,
    calls,
    keys,
    next(...replies) {
      pending.push(...replies)
    },
    get modelsEcho() {
      return modelsEcho
    },
    set modelsEcho(echo) {
      modelsEcho = echo
    },
    close() {
      // Hanging requests and idle keep-alive connections would hold close() open.
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading a request: validated as the real API would, then put in ark's shapes for the mock model.

function readRequest(body: unknown): WireRequest {
  if (!isRecord(body)) throw new Refused('The request body must be a JSON object')
  for (const k of Object.keys(body))
    if (!KNOWN_FIELDS.has(k)) throw new Refused(`${k}: Extra inputs are not permitted`)
  if (typeof body.model !== 'string' || body.model === '') throw new Refused('model: Field required')
  if (body.max_tokens === undefined) throw new Refused('max_tokens: Field required')
  if (!Number.isInteger(body.max_tokens) || (body.max_tokens as number) < 1) {
    throw new Refused('max_tokens: Input should be a positive integer')
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean')
    throw new Refused('stream: Input should be a valid boolean')
  for (const k of ['temperature', 'top_p']) {
    const v = body[k]
    if (v !== undefined && (typeof v !== 'number' || v < 0 || v > 1))
      throw new Refused(`${k}: Input should be between 0 and 1`)
  }
  if (body.top_k !== undefined && (!Number.isInteger(body.top_k) || (body.top_k as number) < 0)) {
    throw new Refused('top_k: Input should be a non-negative integer')
  }
  const stopSequences = body.stop_sequences ?? []
  if (!Array.isArray(stopSequences) || !stopSequences.every((s) => typeof s === 'string')) {
    throw new Refused('stop_sequences: Input should be a list of strings')
  }

  const conversation: ChatMessage[] = []
  const system = systemOf(body.system)
  if (system !== '') conversation.push({ role: 'system', content: system })
  const tools = toolsOf(body.tools)
  const choice = choiceOf(body.tool_choice, tools)

  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw new Refused('messages: Field required')
  const messages = body.messages as unknown[]
  let said = ''
  let openToolUses: string[] = []
  messages.forEach((m, i) => {
    const where = `messages.${String(i)}`
    if (!isRecord(m)) throw new Refused(`${where}: Input should be an object`)
    if (m.role !== 'user' && m.role !== 'assistant')
      throw new Refused(`${where}.role: Input should be 'user' or 'assistant'`)
    const blocks = blocksOf(m.content, where)
    const results = blocks.filter((b) => b.type === 'tool_result').map((b) => b.tool_use_id as string)
    if (m.role === 'assistant' && results.length > 0) {
      throw new Refused(`${where}: tool_result blocks are only allowed in user messages`)
    }
    for (const r of results) {
      if (!openToolUses.includes(r)) {
        throw new Refused(
          `${where}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${r}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
        )
      }
    }
    const missing = openToolUses.filter((u) => !results.includes(u))
    if (missing.length > 0) {
      throw new Refused(
        `${where}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      )
    }
    openToolUses = []
    if (m.role === 'assistant') {
      let text = ''
      const calls: ToolCall[] = []
      for (const b of blocks) {
        if (b.type === 'text') text += b.text as string
        else if (b.type === 'tool_use') {
          const id = b.id as string
          openToolUses.push(id)
          calls.push({
            id,
            type: 'function',
            function: { name: b.name as string, arguments: JSON.stringify(b.input) },
          })
        }
      }
      conversation.push(
        calls.length === 0
          ? { role: 'assistant', content: text }
          : { role: 'assistant', content: text === '' ? null : text, tool_calls: calls },
      )
      return
    }
    for (const b of blocks) {
      if (b.type === 'tool_result') {
        conversation.push({
          role: 'tool',
          tool_call_id: b.tool_use_id as string,
          content: resultText(b.content),
        })
      }
    }
    const text = blocks
      .filter((b) => b.type === 'text')
      .map((b) => b.text as string)
      .join('\n')
    if (text !== '' || results.length === 0) {
      conversation.push({ role: 'user', content: text })
      said = text
    }
  })
  return {
    model: body.model,
    stream: body.stream === true,
    conversation,
    tools,
    choice,
    stopSequences,
    said,
  }
}

function systemOf(system: unknown): string {
  if (system === undefined) return ''
  if (typeof system === 'string') return system
  if (
    Array.isArray(system) &&
    system.every((b) => isRecord(b) && b.type === 'text' && typeof b.text === 'string')
  ) {
    return (system as { text: string }[]).map((b) => b.text).join('\n')
  }
  throw new Refused('system: Input should be a string or a list of text blocks')
}

function toolsOf(tools: unknown): WireTool[] {
  if (tools === undefined) return []
  if (!Array.isArray(tools)) throw new Refused('tools: Input should be a valid list')
  const seen = new Set<string>()
  return tools.map((t: unknown, i) => {
    const where = `tools.${String(i)}`
    if (!isRecord(t)) throw new Refused(`${where}: Input should be an object`)
    if (typeof t.name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(t.name)) {
      throw new Refused(`${where}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`)
    }
    if (seen.has(t.name)) throw new Refused(`tools: Tool names must be unique (${t.name})`)
    seen.add(t.name)
    if (!isRecord(t.input_schema) || t.input_schema.type !== 'object') {
      throw new Refused(`${where}.input_schema.type: Input should be 'object'`)
    }
    return { name: t.name, schema: t.input_schema }
  })
}

function choiceOf(choice: unknown, tools: readonly WireTool[]): WireRequest['choice'] {
  if (choice === undefined) return { type: 'auto' }
  if (!isRecord(choice) || !['auto', 'any', 'tool', 'none'].includes(choice.type as string)) {
    throw new Refused("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
  }
  const type = choice.type as string
  if ((type === 'any' || type === 'tool') && tools.length === 0) {
    throw new Refused(`tool_choice: tool_choice.type '${type}' needs tools`)
  }
  if (type === 'tool') {
    if (typeof choice.name !== 'string' || !tools.some((t) => t.name === choice.name)) {
      throw new Refused(`tool_choice.name: no tool named ${String(choice.name)} is offered`)
    }
    return { type, name: choice.name }
  }
  return { type }
}

function blocksOf(content: unknown, where: string): Block[] {
  if (typeof content === 'string') {
    if (content === '') throw new Refused(`${where}.content: String should have at least 1 character`)
    return [{ type: 'text', text: content }]
  }
  if (!Array.isArray(content) || content.length === 0) throw new Refused(`${where}.content: Field required`)
  return content.map((b: unknown, j) => {
    const at = `${where}.content.${String(j)}`
    if (!isRecord(b) || typeof b.type !== 'string')
      throw new Refused(`${at}: Input should be a content block`)
    switch (b.type) {
      case 'text':
        if (typeof b.text !== 'string' || b.text === '')
          throw new Refused(`${at}: text content blocks must be non-empty`)
        break
      case 'image':
        if (!isRecord(b.source) || (b.source.type !== 'base64' && b.source.type !== 'url')) {
          throw new Refused(`${at}.source: Input should be a base64 or url image source`)
        }
        break
      case 'tool_use':
        if (typeof b.id !== 'string' || typeof b.name !== 'string' || !isRecord(b.input)) {
          throw new Refused(`${at}: tool_use blocks need an id, a name and an object input`)
        }
        break
      case 'tool_result':
        if (typeof b.tool_use_id !== 'string') throw new Refused(`${at}.tool_use_id: Field required`)
        break
      default:
        throw new Refused(`${at}.type: unknown content block type ${b.type}`)
    }
    return b as Block
  })
}

function resultText(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content.map((b: unknown) => (isRecord(b) && typeof b.text === 'string' ? b.text : '')).join('')
}

/** The tool a tool_choice makes the model call, when the model did not call one it may. */
function forcedTool(request: WireRequest, calls: readonly ToolCall[]): WireTool | undefined {
  const { choice, tools } = request
  if (choice.type === 'tool') {
    if (calls.length > 0 && calls.every((c) => c.function.name === choice.name)) return undefined
    return tools.find((t) => t.name === choice.name)
  }
  if (choice.type === 'any' && calls.length === 0) {
    return tools.find((t) => t.name === 'final_answer') ?? tools[0]
  }
  return undefined
}

/** The JSON after an `answer:` line: lets a test send an answer that does not match the schema. */
function answerLine(said: string): unknown {
  for (const line of said.split('\n')) {
    const t = line.trim()
    if (!t.startsWith('answer:')) continue
    try {
      return JSON.parse(t.slice('answer:'.length)) as unknown
    } catch {
      return undefined
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------
// Answering

/** The SSE events of a Message, as the API streams it: text a word at a time, tool input in pieces. */
function eventsOf(message: Json): Json[] {
  const content = message.content as Json[]
  const usage = message.usage as { input_tokens: number; output_tokens: number }
  const events: Json[] = [
    {
      type: 'message_start',
      message: {
        ...message,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    },
    { type: 'ping' },
  ]
  content.forEach((block, index) => {
    if (block.type === 'text') {
      events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } })
      for (const word of (block.text as string).match(/\S+\s*|\s+/g) ?? []) {
        events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: word } })
      }
    } else {
      events.push({ type: 'content_block_start', index, content_block: { ...block, input: {} } })
      const json = JSON.stringify(block.input)
      const third = Math.ceil(json.length / 3)
      for (let at = 0; at < json.length; at += third) {
        events.push({
          type: 'content_block_delta',
          index,
          delta: { type: 'input_json_delta', partial_json: json.slice(at, at + third) },
        })
      }
    }
    events.push({ type: 'content_block_stop', index })
  })
  events.push(
    {
      type: 'message_delta',
      delta: { stop_reason: message.stop_reason, stop_sequence: message.stop_sequence },
      usage: { output_tokens: usage.output_tokens },
    },
    { type: 'message_stop' },
  )
  return events
}

/** The mock takes arguments from the user's text as written; the API only ever sends an object. */
function inputOf(args: string): Json {
  const v = parseJson(args)
  return isRecord(v) ? v : {}
}

function modelInfo(id: string): Json {
  return {
    type: 'model',
    id,
    display_name: id,
    created_at: '2025-01-01T00:00:00Z',
    capabilities: null,
    deprecated_at: null,
    lifecycle: 'active',
    line: null,
    max_input_tokens: 200_000,
    max_tokens: 64_000,
    retires_at: null,
  }
}

/** An answer that echoes `value` in the place the reply names (echo.ts). */
async function answerEcho(
  res: ServerResponse,
  echo: EchoReply,
  value: string,
  request: WireRequest,
): Promise<void> {
  const message = (text: string): Json => ({
    id: 'msg_echo',
    type: 'message',
    role: 'assistant',
    model: request.model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  })
  switch (echo.echo) {
    case 'json':
      sendJson(res, 200, { ...message(`echo: ${value}`), echo: value })
      return
    case 'text':
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`your key: ${value}\n`)
      return
    case 'error':
      sendError(res, 400, value, `invalid x-api-key: ${value}`)
      return
    case 'header':
      if (!request.stream) {
        sendJson(res, 200, message('ok'), { 'request-id': value, 'x-echo': value })
        return
      }
      break
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...(echo.echo === 'header' ? { 'request-id': value, 'x-echo': value } : {}),
  })
  const send = (e: Json) => `event: ${String(e.type)}\ndata: ${JSON.stringify(e)}\n\n`
  const events = eventsOf(message(`echo: ${value}`))
  const delta = events.findIndex((e) => e.type === 'content_block_delta')
  res.write(events.slice(0, delta).map(send).join(''))
  switch (echo.echo) {
    case 'sse-raw':
      res.end(`event: content_block_delta\ndata: ${value}\n\n`)
      return
    case 'sse-error':
      res.end(send(errorBody(value, `invalid x-api-key: ${value}`)))
      return
    case 'sse-split': {
      const rest = events.slice(delta).map(send).join('')
      await writeSplit(res, rest, rest.indexOf(value) + Math.floor(value.length / 2))
      res.end()
      return
    }
    case 'sse-data':
      res.end(events.slice(delta).map(send).join(''))
      return
    default:
      res.end(eventsOf(message('ok')).slice(delta).map(send).join(''))
  }
}

function sendScripted(
  res: ServerResponse,
  reply: { status: number; body?: unknown; headers?: Record<string, string> },
) {
  const body =
    reply.body !== undefined
      ? reply.body
      : reply.status >= 400
        ? errorBody(
            ERROR_TYPES[reply.status] ?? 'api_error',
            `fake upstream answered ${String(reply.status)}`,
          )
        : {}
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers })
  res.end(text)
}

function sendError(res: ServerResponse, status: number, type: string, message: string) {
  sendJson(res, status, errorBody(type, message))
}

function errorBody(type: string, message: string): Json {
  return { type: 'error', error: { type, message } }
}

// ---------------------------------------------------------------------------------------------------------

function bearer(authorization: string | undefined): string | undefined {
  return authorization?.startsWith('Bearer ') === true ? authorization.slice('Bearer '.length) : undefined
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

if (import.meta.main) {
  const at = process.argv.indexOf('--port')
  const port = at >= 0 ? Number(process.argv[at + 1]) : 0
  if (!Number.isInteger(port) || port < 0) {
    console.error('usage: node test/fakes/anthropic-upstream.ts [--port N]')
    process.exit(2)
  }
  const fake = await startFakeAnthropic({ port })
  console.log(`listening ${fake.url}`)
  const stop = () => void fake.close().then(() => process.exit(0))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
