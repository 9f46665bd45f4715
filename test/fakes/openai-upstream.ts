/**
 * A fake OpenAI (and Azure OpenAI) chat-completions server: the upstream that provider tests and benchmarks
 * reach through the real SDKs, so they exercise the wire format, not a mocked client. Its answers come from
 * ark's deterministic mock model (gateway/runtime/providers/mock.ts): a test scripts tool calls and answers
 * in the user message the same way it does for `mock`. `next()` scripts what real upstreams also do: error
 * statuses, slowness, broken streams, requests that never get an answer.
 *
 * It refuses what the real API refuses (bad JSON, missing model or messages, tool results without the
 * assistant turn that asked for them), so a gateway bug shows here as the 400 it would meet in production.
 *
 * Also a process of its own, for benchmarks: `node test/fakes/openai-upstream.ts --port N [--key K]...`
 * prints `listening <url>` and serves until SIGTERM.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import type { JsonSchema } from '../../controller/api/index.ts'
// The gateway's face does not export the mock model; this test server needs the model, not the gateway.
import type { ChatMessage, ContentPart, ToolCall, ToolDefinition } from '../../gateway/runtime/messages.ts'
import { textOf } from '../../gateway/runtime/messages.ts'
import type { Completion } from '../../gateway/runtime/provider.ts'
import { createMockProvider } from '../../gateway/runtime/providers/mock.ts'
import type { EchoForm, EchoReply } from './echo.ts'
import { encodeEcho, writeSplit } from './echo.ts'
import { headersOf, isRecord, readBody, sendJson, sleep } from './http.ts'

export interface RecordedCall {
  method: string
  path: string
  query: Record<string, string>
  headers: Record<string, string>
  /** The JSON body; the raw text when it is not JSON; undefined when there is none. */
  body: unknown
  /** The client went away before the answer ended (a server-side cut does not count). */
  closedEarly: boolean
}

export type FakeReply =
  /** Any HTTP answer, body JSON-encoded; without a body, errors get one in OpenAI's shape for the status. */
  | { status: number; body?: unknown; headers?: Record<string, string> }
  /** The default answer, after a delay. */
  | { delayMs: number }
  /**
   * Stream requests: `afterChunks` valid chunks (default 1), then a `data: {not json` line and the end
   * (`malformed`), or the connection closed without `[DONE]` (`cut`). A non-stream request gets a 200 whose
   * body is not JSON (`malformed`) or no answer at all (`cut`).
   */
  | { brokenStream: 'malformed' | 'cut'; afterChunks?: number }
  /** No answer until the client goes away. */
  | { hang: true }
  /** The credential the request carried, echoed back (echo.ts); by default the Authorization or api-key value. */
  | EchoReply

export interface FakeUpstream {
  /** Base URL for the OpenAI SDK: http://127.0.0.1:PORT/v1 */
  readonly url: string
  /** http://127.0.0.1:PORT, the `endpoint` of Azure clients. */
  readonly origin: string
  /** Every request, in order of arrival. */
  readonly calls: RecordedCall[]
  /** Accepted API keys; empty accepts any key, or none. */
  readonly keys: Set<string>
  /** Answers for the next chat-completion calls, in order; then the default behaviour again. */
  next(...replies: FakeReply[]): void
  /** Set: GET /models answers 401 with the credential echoed in this form (a probe meets an echoing upstream). */
  modelsEcho: { readonly form: EchoForm; readonly header?: string } | undefined
  close(): Promise<void>
}

export interface FakeOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Accepted API keys, the initial content of `keys`. */
  keys?: readonly string[]
  /** Keep `calls` (default true). Long benchmark runs turn it off so that memory stays flat. */
  record?: boolean
}

/** What GET /v1/models lists; any other id is found too, except ids starting with `missing`. */
const LISTED_MODELS = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1-mini', 'o4-mini']
const CREATED = 1_715_367_049
const FINGERPRINT = 'fp_ark_fake'

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null }
}
interface Refusal {
  readonly status: number
  readonly body: ErrorBody
}

function refusal(
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null,
  type = 'invalid_request_error',
): Refusal {
  return { status, body: { error: { message, type, param, code } } }
}

interface State {
  readonly calls: RecordedCall[]
  readonly keys: Set<string>
  readonly queue: FakeReply[]
  readonly record: boolean
  readonly idPrefix: string
  count: number
  modelsEcho: FakeUpstream['modelsEcho']
}

/** An ARK Model (gpt-4o on the openai provider) whose calls go to a fake at `url`, its base URL. */
export function fakeModelManifest(url: string, name = 'default'): string {
  return `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: ${name} }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config: { openai: { baseUrl: { value: "${url}" }, apiKey: { value: sk-test } } }
`
}

export async function startFakeOpenAI(options: FakeOptions = {}): Promise<FakeUpstream> {
  const state: State = {
    calls: [],
    keys: new Set(options.keys),
    queue: [],
    record: options.record ?? true,
    idPrefix: randomBytes(4).toString('hex'),
    count: 0,
    modelsEcho: undefined,
  }
  const server = createServer((req, res) => {
    handle(req, res, state).catch(() => {
      // Only a bug here lands in this catch; answer rather than leave the client waiting.
      if (!res.headersSent)
        sendJson(res, 500, refusal(500, 'fake upstream failed', null, null, 'server_error').body)
      else res.destroy()
    })
  })
  // Benchmarks reuse connections; outlive clients' own idle timeouts so the server never closes one first.
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const origin = `http://127.0.0.1:${String(port)}`
  return {
    url: `${origin}/v1`,
    origin,
    calls: state.calls,
    keys: state.keys,
    next(...replies) {
      state.queue.push(...replies)
    },
    get modelsEcho() {
      return state.modelsEcho
    },
    set modelsEcho(echo) {
      state.modelsEcho = echo
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Hanging and kept-alive connections would hold close() forever.
        server.closeAllConnections()
      })
    },
  }
}

type Route =
  | { readonly kind: 'chat'; readonly deployment: string | undefined }
  | { readonly kind: 'models'; readonly id: string | undefined; readonly azure: boolean }
  | { readonly kind: 'none' }

function routeOf(method: string, path: string): Route {
  if (method === 'POST') {
    if (path === '/v1/chat/completions') return { kind: 'chat', deployment: undefined }
    const m = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(path)
    if (m?.[1] !== undefined) return { kind: 'chat', deployment: decodeURIComponent(m[1]) }
  } else if (method === 'GET') {
    const m = /^\/(v1|openai)\/models(?:\/([^/]+))?$/.exec(path)
    if (m !== null) {
      const id = m[2] === undefined ? undefined : decodeURIComponent(m[2])
      return { kind: 'models', id, azure: m[1] === 'openai' }
    }
  }
  return { kind: 'none' }
}

async function handle(req: IncomingMessage, res: ServerResponse, state: State): Promise<void> {
  const method = req.method ?? 'GET'
  const rawUrl = req.url ?? '/'
  const q = rawUrl.indexOf('?')
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q)
  const query = q < 0 ? {} : Object.fromEntries(new URLSearchParams(rawUrl.slice(q + 1)))
  const call: RecordedCall = {
    method,
    path,
    query,
    headers: state.record ? headersOf(req) : {},
    body: undefined,
    closedEarly: false,
  }
  if (state.record) state.calls.push(call)

  const route = routeOf(method, path)
  const azure = path.startsWith('/openai/')
  // Taken on arrival, so that replies go to calls in the order they came, whatever their body sizes.
  const scripted = route.kind === 'chat' ? state.queue.shift() : undefined

  const aborter = new AbortController()
  let cutByServer = false
  res.once('close', () => {
    if (!res.writableFinished && !cutByServer) call.closedEarly = true
    aborter.abort()
  })

  const text = await readBody(req)
  let body: unknown = undefined
  let bodyIsJson = true
  if (text !== '') {
    try {
      body = JSON.parse(text) as unknown
    } catch {
      body = text
      bodyIsJson = false
    }
  }
  call.body = body
  if (aborter.signal.aborted) return

  if (scripted !== undefined) {
    if ('hang' in scripted) return
    if ('status' in scripted) {
      const fallback = scripted.status >= 400 ? errorFor(scripted.status) : undefined
      sendJson(res, scripted.status, scripted.body ?? fallback, scripted.headers)
      return
    }
    if ('delayMs' in scripted) {
      if (!(await sleep(scripted.delayMs, aborter.signal))) return
    }
  }

  if (route.kind === 'none') {
    reply(res, refusal(404, `Invalid URL (${method} ${path})`))
    return
  }
  if (azure && query['api-version'] === undefined) {
    // What Azure answers when the api-version is missing: the resource does not exist without one.
    reply(res, refusal(404, 'Resource not found', 'api-version', '404'))
    return
  }
  const denied = checkKey(req, state.keys, azure)
  if (denied !== undefined) {
    reply(res, denied)
    return
  }

  if (route.kind === 'models') {
    const echo = state.modelsEcho
    if (echo !== undefined) {
      const v = encodeEcho(credential(call.headers, azure, echo.header), echo.form)
      sendJson(res, 401, refusal(401, `Incorrect API key provided: ${v}`, v, v, v).body)
      return
    }
    answerModels(res, route.id, route.azure)
    return
  }

  if (!bodyIsJson || body === undefined) {
    reply(
      res,
      refusal(
        400,
        'We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.',
      ),
    )
    return
  }
  const parsed = parseChatRequest(body, route.deployment)
  if ('status' in parsed) {
    reply(res, parsed)
    return
  }
  if (scripted !== undefined && 'echo' in scripted) {
    const value = encodeEcho(credential(headersOf(req), azure, scripted.header), scripted.form)
    await answerEcho(res, scripted, value, parsed)
    return
  }
  const broken = scripted !== undefined && 'brokenStream' in scripted ? scripted : undefined
  const id = `chatcmpl-${state.idPrefix}${String(++state.count)}`
  if (parsed.stream) await answerStream(res, id, parsed, aborter.signal, broken, () => (cutByServer = true))
  else await answerOnce(res, id, parsed, aborter.signal, broken, () => (cutByServer = true))
}

function checkKey(req: IncomingMessage, keys: ReadonlySet<string>, azure: boolean): Refusal | undefined {
  if (keys.size === 0) return undefined
  const auth = req.headers.authorization
  const bearer = auth?.startsWith('Bearer ') === true ? auth.slice('Bearer '.length) : undefined
  // Azure takes `api-key`, and a bearer token from Entra ID as the alternative.
  const apiKey = req.headers['api-key']
  const key = azure && typeof apiKey === 'string' ? apiKey : bearer
  if (key === undefined || key === '') {
    return refusal(
      401,
      azure
        ? "You didn't provide an API key: send it in the `api-key` header."
        : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      null,
      azure ? '401' : null,
    )
  }
  if (keys.has(key)) return undefined
  // The real API echoes (part of) the key it got; echoing all of it lets tests prove the gateway redacts it.
  return refusal(
    401,
    `Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    null,
    'invalid_api_key',
  )
}

function errorFor(status: number): ErrorBody {
  if (status === 401) return refusal(status, 'Invalid authentication', null, 'invalid_api_key').body
  if (status === 429)
    return refusal(
      status,
      'Rate limit reached for requests. Please try again later.',
      null,
      'rate_limit_exceeded',
      'requests',
    ).body
  if (status >= 500)
    return refusal(
      status,
      'The server had an error while processing your request. Sorry about that!',
      null,
      null,
      'server_error',
    ).body
  return refusal(status, `The fake upstream answered ${String(status)} as scripted.`).body
}

function answerModels(res: ServerResponse, id: string | undefined, azure: boolean): void {
  const model = (name: string) =>
    azure
      ? {
          id: name,
          object: 'model',
          created_at: CREATED,
          status: 'succeeded',
          capabilities: { chat_completion: true, completion: false, embeddings: false, fine_tune: false },
          lifecycle_status: 'generally-available',
        }
      : { id: name, object: 'model', created: CREATED, owned_by: 'system' }
  if (id === undefined) {
    sendJson(res, 200, { object: 'list', data: LISTED_MODELS.map(model) })
  } else if (id.startsWith('missing')) {
    reply(res, refusal(404, `The model '${id}' does not exist`, 'model', 'model_not_found'))
  } else {
    sendJson(res, 200, model(id))
  }
}

interface ChatRequest {
  readonly model: string
  readonly messages: ChatMessage[]
  readonly tools: ToolDefinition[]
  readonly outputSchema: JsonSchema | undefined
  readonly stream: boolean
  readonly includeUsage: boolean
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function'])

function parseChatRequest(body: unknown, deployment: string | undefined): ChatRequest | Refusal {
  if (!isRecord(body)) return refusal(400, 'The request body must be a JSON object.')
  // Azure takes the model from the deployment and ignores the body's `model`.
  const model = deployment ?? body.model
  if (typeof model !== 'string' || model === '') return refusal(400, 'you must provide a model parameter')
  if (model.startsWith('missing')) {
    return deployment === undefined
      ? refusal(
          404,
          `The model \`${model}\` does not exist or you do not have access to it.`,
          null,
          'model_not_found',
        )
      : refusal(
          404,
          'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.',
          null,
          'DeploymentNotFound',
        )
  }

  const raw = body.messages
  if (raw === undefined)
    return refusal(400, "Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter')
  if (!Array.isArray(raw))
    return refusal(
      400,
      "Invalid type for 'messages': expected an array of objects.",
      'messages',
      'invalid_type',
    )
  if (raw.length === 0)
    return refusal(
      400,
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'messages',
      'empty_array',
    )
  const messages: ChatMessage[] = []
  // The real API refuses tool results that answer no call, and calls left without a result.
  let asked = new Set<string>()
  let unanswered = new Set<string>()
  let askedAt = -1
  const orphans = () =>
    refusal(
      400,
      `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...unanswered].join(', ')}`,
      `messages.[${String(askedAt)}].role`,
    )
  for (let i = 0; i < raw.length; i++) {
    const m: unknown = raw[i]
    const at = `messages[${String(i)}]`
    if (!isRecord(m)) return refusal(400, `Invalid type for '${at}': expected an object.`, at, 'invalid_type')
    const role = m.role
    if (typeof role !== 'string')
      return refusal(
        400,
        `Missing required parameter: '${at}.role'.`,
        `${at}.role`,
        'missing_required_parameter',
      )
    if (!ROLES.has(role))
      return refusal(
        400,
        `Invalid value: '${role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`,
        `${at}.role`,
        'invalid_value',
      )
    if (role !== 'tool' && unanswered.size > 0) return orphans()
    if (role === 'tool') {
      const callId = m.tool_call_id
      if (typeof callId !== 'string')
        return refusal(
          400,
          `Missing required parameter: '${at}.tool_call_id'.`,
          `${at}.tool_call_id`,
          'missing_required_parameter',
        )
      if (!asked.has(callId))
        return refusal(
          400,
          "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
          `messages.[${String(i)}].role`,
        )
      unanswered.delete(callId)
      messages.push({ role: 'tool', tool_call_id: callId, content: textOf(contentOf(m.content) ?? '') })
    } else if (role === 'assistant') {
      const calls = m.tool_calls
      let toolCalls: ToolCall[] | undefined
      if (Array.isArray(calls) && calls.length > 0) {
        toolCalls = []
        for (let j = 0; j < calls.length; j++) {
          const c: unknown = calls[j]
          const fn = isRecord(c) ? c.function : undefined
          if (!isRecord(c) || typeof c.id !== 'string' || !isRecord(fn) || typeof fn.name !== 'string')
            return refusal(
              400,
              `Invalid '${at}.tool_calls[${String(j)}]': expected id, type and function.name.`,
              `${at}.tool_calls[${String(j)}]`,
              'invalid_value',
            )
          const args = typeof fn.arguments === 'string' ? fn.arguments : ''
          toolCalls.push({ id: c.id, type: 'function', function: { name: fn.name, arguments: args } })
        }
        asked = new Set(toolCalls.map((c) => c.id))
        unanswered = new Set(asked)
        askedAt = i
      }
      const content =
        m.content === undefined || m.content === null ? null : textOf(contentOf(m.content) ?? '')
      messages.push(
        toolCalls === undefined
          ? { role: 'assistant', content }
          : { role: 'assistant', content, tool_calls: toolCalls },
      )
    } else if (role === 'function') {
      // Deprecated function results: accepted by the API, meaningless to the mock.
    } else {
      const content = contentOf(m.content)
      if (content === undefined)
        return refusal(
          400,
          `Missing required parameter: '${at}.content'.`,
          `${at}.content`,
          'missing_required_parameter',
        )
      // A user message's name reaches the mock: it skips the runtime's own corrections (name: ark).
      if (role === 'user' && typeof m.name === 'string')
        messages.push({ role: 'user', content, name: m.name })
      else messages.push({ role: role as 'user' | 'system' | 'developer', content })
    }
  }
  if (unanswered.size > 0) return orphans()

  const tools: ToolDefinition[] = []
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools))
      return refusal(400, "Invalid type for 'tools': expected an array.", 'tools', 'invalid_type')
    for (let i = 0; i < body.tools.length; i++) {
      const t: unknown = body.tools[i]
      const fn = isRecord(t) ? t.function : undefined
      if (!isRecord(fn) || typeof fn.name !== 'string')
        return refusal(
          400,
          `Missing required parameter: 'tools[${String(i)}].function.name'.`,
          `tools[${String(i)}].function.name`,
          'missing_required_parameter',
        )
      const parameters = isRecord(fn.parameters) ? fn.parameters : { type: 'object', properties: {} }
      tools.push({ type: 'function', function: { name: fn.name, parameters } })
    }
  }

  let outputSchema: JsonSchema | undefined
  const format = body.response_format
  if (isRecord(format) && format.type === 'json_schema') {
    const js = format.json_schema
    if (!isRecord(js) || typeof js.name !== 'string')
      return refusal(
        400,
        "Missing required parameter: 'response_format.json_schema.name'.",
        'response_format.json_schema.name',
        'missing_required_parameter',
      )
    if (isRecord(js.schema)) outputSchema = js.schema
  } else if (isRecord(format) && format.type === 'json_object') {
    // As the API does: JSON mode needs the conversation to say JSON somewhere.
    if (
      !messages.some((m) =>
        textOf(m.content ?? '')
          .toLowerCase()
          .includes('json'),
      )
    )
      return refusal(
        400,
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
        'messages',
      )
    outputSchema = { type: 'object' }
  }

  const stream = body.stream === true
  const streamOptions = body.stream_options
  if (streamOptions !== undefined && streamOptions !== null && !stream)
    return refusal(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
    )
  const includeUsage = isRecord(streamOptions) && streamOptions.include_usage === true
  return { model, messages, tools, outputSchema, stream, includeUsage }
}

function contentOf(value: unknown): string | ContentPart[] | undefined {
  if (typeof value === 'string') return value
  if (Array.isArray(value)) return value.filter(isRecord) as ContentPart[]
  return undefined
}

type Broken = Extract<FakeReply, { brokenStream: unknown }>

function runMock(
  request: ChatRequest,
  signal: AbortSignal,
  onDelta?: (text: string) => void,
): Promise<Completion> {
  const provider = createMockProvider({ provider: 'mock', model: request.model, headers: {}, properties: {} })
  return provider.complete({
    messages: request.messages,
    tools: request.tools,
    outputSchema: request.outputSchema,
    signal,
    onDelta,
  })
}

function usageOf(c: Completion) {
  return {
    prompt_tokens: c.usage.promptTokens,
    completion_tokens: c.usage.completionTokens,
    total_tokens: c.usage.totalTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  }
}

async function answerOnce(
  res: ServerResponse,
  id: string,
  request: ChatRequest,
  signal: AbortSignal,
  broken: Broken | undefined,
  cutting: () => void,
): Promise<void> {
  if (broken?.brokenStream === 'cut') {
    cutting()
    res.destroy()
    return
  }
  let completion: Completion
  try {
    completion = await runMock(request, signal)
  } catch {
    return // only an abort: the client is gone
  }
  if (broken?.brokenStream === 'malformed') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{not json')
    return
  }
  const { message } = completion
  const body = {
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content,
          refusal: null,
          annotations: [],
          ...(message.tool_calls === undefined ? {} : { tool_calls: message.tool_calls }),
        },
        logprobs: null,
        finish_reason: completion.finishReason,
      },
    ],
    usage: usageOf(completion),
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
  }
  sendJson(res, 200, body, { 'x-request-id': id })
}

async function answerStream(
  res: ServerResponse,
  id: string,
  request: ChatRequest,
  signal: AbortSignal,
  broken: Broken | undefined,
  cutting: () => void,
): Promise<void> {
  const created = Math.floor(Date.now() / 1000)
  const limit = broken === undefined ? Infinity : Math.max(0, broken.afterChunks ?? 1)
  // An object, not two lets: the closures below change it behind the compiler's back.
  const progress = { sent: 0, stopped: false }
  const head = `{"id":"${id}","object":"chat.completion.chunk","created":${String(created)},"model":${JSON.stringify(request.model)},"service_tier":"default","system_fingerprint":"${FINGERPRINT}",`
  const tail = request.includeUsage ? ',"usage":null}' : '}'

  const breakNow = () => {
    progress.stopped = true
    // Headers wait for the first body write; a break before any chunk must still show a 200 stream.
    if (progress.sent === 0) res.flushHeaders()
    res.uncork()
    if (broken?.brokenStream === 'malformed') {
      res.end('data: {not json\n\n')
    } else {
      cutting()
      // After what was written has gone out, so the client does see the valid chunks first.
      res.socket?.destroySoon()
    }
  }
  const emit = (json: string) => {
    if (progress.stopped) return
    if (progress.sent >= limit) {
      breakNow()
      return
    }
    res.write(`data: ${json}\n\n`)
    progress.sent++
  }
  const choice = (delta: unknown, finish: string | null = null) =>
    `${head}"choices":[{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${tail}`

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': id,
  })
  // The mock hands its words over synchronously: one write per chunk would be one syscall per word.
  res.cork()
  emit(choice({ role: 'assistant', content: '', refusal: null }))
  let completion: Completion
  try {
    completion = await runMock(request, signal, (text) => emit(choice({ content: text })))
  } catch {
    return // only an abort: the client is gone
  }
  const calls = completion.message.tool_calls ?? []
  for (let index = 0; index < calls.length; index++) {
    const call = calls[index]!
    emit(
      choice({
        tool_calls: [
          { index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } },
        ],
      }),
    )
    for (const piece of fragments(call.function.arguments)) {
      emit(choice({ tool_calls: [{ index, function: { arguments: piece } }] }))
    }
  }
  emit(choice({}, completion.finishReason))
  if (request.includeUsage) emit(`${head}"choices":[],"usage":${JSON.stringify(usageOf(completion))}}`)
  if (progress.stopped) return
  if (broken !== undefined) {
    // Fewer chunks than asked for before the break: break at the end, still before [DONE].
    breakNow()
    return
  }
  res.uncork()
  res.end('data: [DONE]\n\n')
}

/** Arguments in pieces the way OpenAI streams them: at least two, at most 16 characters each. */
function fragments(args: string): string[] {
  if (args.length < 2) return [args]
  const size = Math.min(16, Math.ceil(args.length / 2))
  const out: string[] = []
  for (let i = 0; i < args.length; i += size) out.push(args.slice(i, i + size))
  return out
}

/** The value of the header an echo quotes: the one that carries the key unless another is named. */
function credential(headers: Record<string, string>, azure: boolean, header: string | undefined): string {
  return headers[header ?? (azure ? 'api-key' : 'authorization')] ?? ''
}

/** An answer that echoes `value` in the place the reply names (echo.ts). */
async function answerEcho(
  res: ServerResponse,
  echo: EchoReply,
  value: string,
  request: ChatRequest,
): Promise<void> {
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta: unknown, finish: string | null = null) =>
    JSON.stringify({
      id: 'chatcmpl-echo',
      object: 'chat.completion.chunk',
      created,
      model: request.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    })
  const whole = (content: string) => ({
    id: 'chatcmpl-echo',
    object: 'chat.completion',
    created,
    model: request.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  })
  const error = { message: `Incorrect API key provided: ${value}`, type: value, param: value, code: value }
  switch (echo.echo) {
    case 'json':
      sendJson(res, 200, { ...whole(`echo: ${value}`), echo: value })
      return
    case 'text':
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`your key: ${value}\n`)
      return
    case 'error':
      sendJson(res, 400, { error })
      return
    case 'header':
      if (!request.stream) {
        sendJson(res, 200, whole('ok'), { 'x-request-id': value, 'x-echo': value })
        return
      }
      break
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...(echo.echo === 'header' ? { 'x-request-id': value, 'x-echo': value } : {}),
  })
  res.write(`data: ${chunk({ role: 'assistant', content: '' })}\n\n`)
  switch (echo.echo) {
    case 'sse-raw':
      res.end(`data: ${value}\n\n`)
      return
    case 'sse-error':
      res.end(`data: ${JSON.stringify({ error })}\n\n`)
      return
    case 'sse-split': {
      const event = `data: ${chunk({ content: `echo: ${value}` })}\n\n`
      await writeSplit(res, event, event.indexOf(value) + Math.floor(value.length / 2))
      break
    }
    case 'sse-data':
      res.write(`data: ${chunk({ content: `echo: ${value}` })}\n\n`)
      break
    default:
      res.write(`data: ${chunk({ content: 'ok' })}\n\n`)
  }
  res.write(`data: ${chunk({}, 'stop')}\n\n`)
  res.end('data: [DONE]\n\n')
}

function reply(res: ServerResponse, r: Refusal): void {
  sendJson(res, r.status, r.body)
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '0' }, key: { type: 'string', multiple: true } },
  })
  const fake = await startFakeOpenAI({ port: Number(values.port), keys: values.key ?? [], record: false })
  process.stdout.write(`listening ${fake.url}\n`)
  const stop = () => {
    void fake.close().then(() => process.exit(0))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
