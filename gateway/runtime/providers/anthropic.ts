/**
 * `anthropic`: Claude through the Messages API and the `@anthropic-ai/sdk` client, for Anthropic itself and any
 * server that speaks its wire format at a `baseUrl`.
 *
 * One SDK client per Model, reused for every call, so connections stay warm. Retries (408/409/429/5xx and
 * connection errors, exponential backoff, retry-after and retry-after-ms honoured) and the per-attempt timeout
 * are the SDK's policy; the task's signal reaches every request, so a cancelled or timed-out task aborts the
 * upstream call.
 *
 * Messages, streamed or not, go out without the SDK's per-call work (wire.ts: the URL and headers the SDK
 * works out once, the same retry policy), and a stream's events are read with sse.ts. The SDK serves the
 * probes, and its error classes are still what failures are mapped from.
 *
 * The conversation is OpenAI-shaped; the Messages API differs in ways this file bridges: the system prompt is
 * a parameter, tool results are blocks of a user message, roles must alternate, `max_tokens` is required, and
 * there is no JSON answer mode that takes any schema, so an outputSchema becomes a tool the model is made to
 * call (its input is the answer).
 */
import Anthropic, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from '@anthropic-ai/sdk'
import type {
  ContentBlockParam,
  ImageBlockParam,
  Message,
  MessageCreateParamsBase,
  MessageParam,
  RawMessageStreamEvent,
  StopReason,
  Tool,
  ToolChoice,
} from '@anthropic-ai/sdk/resources/messages'
import type { JsonSchema } from '../../../controller/api/index.ts'
import type {
  AssistantMessage,
  ChatMessage,
  ContentPart,
  ToolCall,
  ToolDefinition,
  Usage,
} from '../messages.ts'
import { textOf } from '../messages.ts'
import type { Completion, CompletionRequest, FinishReason, Provider, ProviderConfig } from '../provider.ts'
import { ProviderError, abortReason, propertyValues, redact, redactorOf } from '../provider.ts'
import type { Redactor } from '../redactor.ts'
import { sseObjects } from './sse.ts'
import { poster, wireOf } from './wire.ts'

const ANTHROPIC_BASE_URL = 'https://api.anthropic.com'
/** Anthropic refuses a request without max_tokens; this is what a Model that names none gets. */
const DEFAULT_MAX_TOKENS = 4096
/**
 * The SDK's own default, given explicitly: without a client timeout the SDK refuses, before sending, a
 * non-streaming call whose max_tokens it guesses would take longer than ten minutes.
 */
const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000
const ANSWER_TOOL = 'final_answer'

type Params = Omit<MessageCreateParamsBase, 'stream'>

/** How an outputSchema travels: as a tool whose input is the answer. */
interface AnswerTool {
  readonly name: string
  /** The schema is not an object, so the tool takes `{value: <answer>}`. */
  readonly wrapped: boolean
}

/** A content block of the reply, the same whether it came whole or streamed. */
type Part =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type: 'tool'
      readonly id: string
      readonly name: string
      readonly args: string
      readonly input: unknown
    }

export function createAnthropicProvider(config: ProviderConfig): Provider {
  const secrets = redactorOf(config)
  const headerAuth = hasHeader(config.headers, 'authorization') || hasHeader(config.headers, 'x-api-key')
  // A server at a baseUrl (a proxy, a gateway) may need no key; Anthropic itself always does.
  const missingKey = config.apiKey === undefined && config.baseUrl === undefined && !headerAuth
  const client = new Anthropic({
    // Always a key, so that the SDK never looks for credentials of its own (ANTHROPIC_API_KEY, profiles on
    // disk, workload identity): what the Model says is all there is. Without one, no Authorization is sent.
    apiKey: config.apiKey ?? 'unused',
    webhookKey: null,
    baseURL: config.baseUrl ?? ANTHROPIC_BASE_URL,
    defaultHeaders: {
      ...config.headers,
      ...(config.apiVersion === undefined ? {} : { 'anthropic-version': config.apiVersion }),
      ...(config.apiKey === undefined && !hasHeader(config.headers, 'authorization')
        ? { Authorization: null }
        : {}),
    },
    timeout: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxRetries: config.maxRetries ?? 2,
    ...(config.fetch === undefined ? {} : { fetch: config.fetch }),
    // Failures reach the caller as ProviderErrors; the SDK's own console lines would be unstructured and could
    // print what an upstream sent.
    logLevel: 'off',
  })
  const defaults = samplingOf(propertyValues(config.properties), false)
  const post = poster({
    send: config.fetch ?? fetch,
    wire: async () => wireOf(await client.buildRequest({ method: 'post', path: '/v1/messages', body: {} })),
    timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxRetries: config.maxRetries ?? 2,
    errors: {
      connection: (cause) => new APIConnectionError({ cause }),
      status: (status, json, text, headers) => APIError.generate(status, json, text, headers),
    },
  })
  const fail = (err: unknown, signal: AbortSignal): ProviderError => {
    if (signal.aborted) throw abortReason(signal)
    return providerError(err, secrets, config)
  }
  const noKey = () =>
    new ProviderError(
      `the anthropic model ${config.model} has no API key: set apiKey in the Model (e.g. from a Secret)`,
      { code: 'missing_api_key' },
    )

  return {
    provider: 'anthropic',
    model: config.model,

    async complete(request) {
      if (missingKey) throw noKey()
      const { params, answer } = paramsOf(request, config.model, defaults)
      const { signal, onDelta } = request
      try {
        if (onDelta === undefined) {
          const res = await post({ ...params, stream: false }, signal)
          return completionOf((await res.json()) as Message, answer, config.model)
        }
        const res = await post({ ...params, stream: true }, signal)
        const completion = await collect(
          eventsOf(res, signal),
          answer === undefined ? onDelta : undefined,
          config.model,
          answer,
        )
        // With an outputSchema, text beside the tool calls is not the answer, and the answer (the tool's JSON)
        // must not reach a reader in pieces: it is given once, whole.
        if (answer !== undefined && completion.message.tool_calls === undefined) {
          const content = completion.message.content ?? ''
          if (content !== '') await onDelta(content)
        }
        return completion
      } catch (err) {
        throw fail(err, signal)
      }
    },

    async probe(signal) {
      if (missingKey) throw noKey()
      try {
        // A probe runs again soon by itself: no retries, so that it says promptly what is wrong.
        await client.models.retrieve(config.model, null, { signal, maxRetries: 0 })
      } catch (err) {
        const e = fail(err, signal)
        if (e.status === 404) {
          throw new ProviderError(`the model ${config.model} does not exist upstream (${e.message})`, {
            status: 404,
            code: 'model_not_found',
          })
        }
        throw e
      }
    },
  }
}

function hasHeader(headers: Readonly<Record<string, string>>, name: string): boolean {
  return Object.keys(headers).some((k) => k.toLowerCase() === name)
}

// ---------------------------------------------------------------------------------------------------------
// Request

/**
 * Sampling parameters in Anthropic's names, from a Model's properties or from a request's parameters (in
 * OpenAI's names, `openAINames`). Names the Messages API does not know are left out rather than refused.
 */
function samplingOf(values: Readonly<Record<string, unknown>>, openAINames: boolean): Partial<Params> {
  const out: Partial<Params> & Record<string, unknown> = {}
  for (const key of ['temperature', 'top_p', ...(openAINames ? [] : ['top_k'])]) {
    const v = values[key]
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v
  }
  const stop = stopOf(values.stop) ?? (openAINames ? undefined : stopOf(values.stop_sequences))
  if (stop !== undefined) out.stop_sequences = stop
  const max = tokensOf(openAINames ? (values.max_completion_tokens ?? values.max_tokens) : values.max_tokens)
  if (max !== undefined) out.max_tokens = max
  return out
}

function stopOf(v: unknown): string[] | undefined {
  if (typeof v === 'string') return v === '' ? undefined : [v]
  if (Array.isArray(v)) {
    const all = v.filter((s): s is string => typeof s === 'string' && s !== '')
    return all.length === 0 ? undefined : all
  }
  return undefined
}

function tokensOf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? Math.max(1, Math.floor(v)) : undefined
}

function paramsOf(
  request: CompletionRequest,
  model: string,
  defaults: Partial<Params>,
): { params: Params; answer: AnswerTool | undefined } {
  // The agent's settings, then the Model's properties, then the caller's parameters.
  const sampling = {
    ...samplingOf(request.defaults ?? {}, true),
    ...defaults,
    ...samplingOf(request.parameters ?? {}, true),
  }
  const { system, messages } = conversationOf(request.messages)
  const tools: Tool[] = request.tools.map(toolOf)
  let answer: AnswerTool | undefined
  let toolChoice: ToolChoice | undefined
  if (request.outputSchema !== undefined) {
    const name = freeName(request.tools)
    const { schema, wrapped } = inputSchemaOf(request.outputSchema)
    answer = { name, wrapped }
    // With other tools the model may still need them; `any` makes it call one, and the answer is one of them.
    toolChoice = tools.length === 0 ? { type: 'tool', name } : { type: 'any' }
    tools.push({
      name,
      description: 'Give your final answer by calling this tool: its input is the answer.',
      input_schema: schema,
    })
  }
  // OpenAI's `tool_choice: required` (a team's selector must pick by tool) is Anthropic's `any`.
  if (toolChoice === undefined && tools.length > 0 && request.parameters?.tool_choice === 'required')
    toolChoice = { type: 'any' }
  const params: Params = {
    ...sampling,
    model,
    max_tokens: Math.min(
      tokensOf(request.maxTokens) ?? sampling.max_tokens ?? DEFAULT_MAX_TOKENS,
      request.replyBudget ?? Number.POSITIVE_INFINITY,
    ),
    messages,
  }
  if (system !== '') params.system = system
  if (tools.length > 0) params.tools = tools
  if (toolChoice !== undefined) params.tool_choice = toolChoice
  return { params, answer }
}

function freeName(tools: readonly ToolDefinition[]): string {
  const taken = new Set(tools.map((t) => t.function.name))
  let name = ANSWER_TOOL
  for (let i = 1; taken.has(name); i++) name = `${ANSWER_TOOL}_${String(i)}`
  return name
}

function inputSchemaOf(schema: JsonSchema): { schema: Tool.InputSchema; wrapped: boolean } {
  if (schema.type === 'object' || (schema.type === undefined && typeof schema.properties === 'object')) {
    return { schema: { ...schema, type: 'object' }, wrapped: false }
  }
  // A tool's input is always an object: any other answer travels as its `value`.
  return { schema: { type: 'object', properties: { value: schema }, required: ['value'] }, wrapped: true }
}

function toolOf(tool: ToolDefinition): Tool {
  const f = tool.function
  const schema: Tool.InputSchema = { type: 'object', ...f.parameters }
  return f.description === undefined
    ? { name: f.name, input_schema: schema }
    : { name: f.name, description: f.description, input_schema: schema }
}

/**
 * The conversation in the Messages API's shape: system and developer messages become the `system` parameter,
 * tool results become tool_result blocks of a user message, and neighbours of the same role merge into one
 * message, since the API expects user and assistant to alternate.
 */
function conversationOf(conversation: readonly ChatMessage[]): { system: string; messages: MessageParam[] } {
  const system: string[] = []
  const messages: { role: 'user' | 'assistant'; content: ContentBlockParam[] }[] = []
  const add = (role: 'user' | 'assistant', blocks: ContentBlockParam[]) => {
    if (blocks.length === 0) return
    const last = messages.at(-1)
    if (last?.role !== role) {
      messages.push({ role, content: blocks })
      return
    }
    last.content.push(...blocks)
  }
  for (const m of conversation) {
    switch (m.role) {
      case 'system':
      case 'developer': {
        const text = textOf(m.content)
        if (text !== '') system.push(text)
        break
      }
      case 'user':
        add('user', userBlocks(m.content))
        break
      case 'assistant': {
        const blocks: ContentBlockParam[] = []
        if (m.content !== null && m.content !== '') blocks.push({ type: 'text', text: m.content })
        for (const call of m.tool_calls ?? []) {
          blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input: argumentsOf(call) })
        }
        add('assistant', blocks)
        break
      }
      case 'tool':
        add('user', [
          m.content === ''
            ? { type: 'tool_result', tool_use_id: m.tool_call_id }
            : { type: 'tool_result', tool_use_id: m.tool_call_id, content: m.content },
        ])
        break
    }
  }
  return { system: system.join('\n\n'), messages }
}

/** The arguments as an object; ones that are not (the loop already told the model so) become `{}`. */
function argumentsOf(call: ToolCall): unknown {
  try {
    const v: unknown = JSON.parse(call.function.arguments)
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}
  } catch {
    return {}
  }
}

function userBlocks(content: string | readonly ContentPart[]): ContentBlockParam[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }]
  const blocks: ContentBlockParam[] = []
  for (const part of content) {
    if (part.type === 'text' && 'text' in part) {
      if (part.text !== '') blocks.push({ type: 'text', text: part.text })
    } else if (part.type === 'image_url') {
      const image = imageOf(part)
      if (image !== undefined) blocks.push(image)
    }
    // Other parts (audio, files) have no Messages API equivalent here: dropped rather than refused.
  }
  return blocks
}

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

function imageOf(part: ContentPart): ImageBlockParam | undefined {
  const image = (part as { image_url?: unknown }).image_url
  const url =
    typeof image === 'string'
      ? image
      : typeof image === 'object' && image !== null && typeof (image as { url?: unknown }).url === 'string'
        ? (image as { url: string }).url
        : undefined
  if (url === undefined) return undefined
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (data !== null) {
    const mediaType = (data[1] ?? '').toLowerCase()
    if (!IMAGE_TYPES.has(mediaType)) return undefined
    return {
      type: 'image',
      source: {
        type: 'base64',
        media_type: mediaType as 'image/png',
        data: data[2] ?? '',
      },
    }
  }
  return url.startsWith('https://') ? { type: 'image', source: { type: 'url', url } } : undefined
}

// ---------------------------------------------------------------------------------------------------------
// Response

function completionOf(message: Message, answer: AnswerTool | undefined, model: string): Completion {
  if (!Array.isArray(message.content)) {
    throw new ProviderError(`the answer of ${model} has no content`, { code: 'bad_response' })
  }
  const parts: Part[] = []
  for (const block of message.content) {
    if (block.type === 'text') parts.push({ type: 'text', text: block.text })
    else if (block.type === 'tool_use') {
      parts.push({
        type: 'tool',
        id: block.id,
        name: block.name,
        args: JSON.stringify(block.input ?? {}),
        input: block.input,
      })
    }
  }
  const u = message.usage
  return assemble(
    parts,
    message.stop_reason,
    usageOf(u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.output_tokens),
    answer,
  )
}

/** Reads a stream: text goes to `onDelta` as it arrives, tool inputs are put together from their JSON pieces. */
async function collect(
  stream: AsyncIterable<RawMessageStreamEvent>,
  onDelta: ((text: string) => void | Promise<void>) | undefined,
  model: string,
  answer: AnswerTool | undefined,
): Promise<Completion> {
  const blocks: (
    | { type: 'text'; text: string }
    | { type: 'tool'; id: string; name: string; json: string; input: unknown }
    | undefined
  )[] = []
  let stop: StopReason | null = null
  let ended = false
  let input = 0
  let cacheCreation = 0
  let cacheRead = 0
  let output = 0
  for await (const event of stream) {
    switch (event.type) {
      case 'message_start': {
        const u = event.message.usage
        input = u.input_tokens
        cacheCreation = u.cache_creation_input_tokens ?? 0
        cacheRead = u.cache_read_input_tokens ?? 0
        output = u.output_tokens
        break
      }
      case 'content_block_start': {
        const b = event.content_block
        if (b.type === 'text') {
          blocks[event.index] = { type: 'text', text: b.text }
          // A slow reader: the SDK's stream is not read on until it caught up (backpressure to the upstream).
          if (b.text !== '') await onDelta?.(b.text)
        } else if (b.type === 'tool_use') {
          blocks[event.index] = { type: 'tool', id: b.id, name: b.name, json: '', input: b.input }
        }
        break
      }
      case 'content_block_delta': {
        const b = blocks[event.index]
        const d = event.delta
        if (d.type === 'text_delta' && b?.type === 'text') {
          b.text += d.text
          if (d.text !== '') await onDelta?.(d.text)
        } else if (d.type === 'input_json_delta' && b?.type === 'tool') b.json += d.partial_json
        break
      }
      case 'message_delta': {
        stop = event.delta.stop_reason
        const u = event.usage
        output = u.output_tokens
        // Newer API versions repeat the input counts here, final; older ones send null.
        if (typeof u.input_tokens === 'number') input = u.input_tokens
        if (typeof u.cache_creation_input_tokens === 'number') cacheCreation = u.cache_creation_input_tokens
        if (typeof u.cache_read_input_tokens === 'number') cacheRead = u.cache_read_input_tokens
        break
      }
      case 'message_stop':
        ended = true
        break
      case 'content_block_stop':
        break
    }
  }
  if (!ended) {
    // The SDK ends an aborted stream quietly; the caller's signal is checked by the caller.
    throw new ProviderError(`the answer stream of ${model} ended before message_stop`, {
      code: 'bad_response',
    })
  }
  const parts: Part[] = []
  for (const b of blocks) {
    if (b?.type === 'text') parts.push(b)
    else if (b?.type === 'tool') {
      const args = b.json.trim() === '' ? JSON.stringify(b.input ?? {}) : b.json
      parts.push({ type: 'tool', id: b.id, name: b.name, args, input: parsed(args) })
    }
  }
  return assemble(parts, stop, usageOf(input, cacheCreation, cacheRead, output), answer)
}

/**
 * The events of a streamed answer. An `error` event (overloaded_error, ...) becomes the SDK's APIError with
 * the upstream's type, as the SDK's own stream raises it; pings and events this does not know pass, and
 * `collect` skips them.
 */
async function* eventsOf(res: Response, signal: AbortSignal): AsyncGenerator<RawMessageStreamEvent> {
  // Plain errors (sse.ts): providerError words them as an answer that could not be read, through the redactor.
  for await (const event of sseObjects(res, signal)) {
    // The SDK's error takes the upstream's type from the event's `error.type`.
    if ((event as { type?: unknown }).type === 'error')
      throw new APIError(undefined, event, undefined, res.headers)
    yield event as RawMessageStreamEvent
  }
}

function assemble(
  parts: readonly Part[],
  stop: StopReason | null,
  usage: Usage,
  answer: AnswerTool | undefined,
): Completion {
  let text = ''
  let sawText = false
  const calls: ToolCall[] = []
  let answered: Part | undefined
  for (const p of parts) {
    if (p.type === 'text') {
      text += p.text
      sawText = true
    } else if (answer !== undefined && p.name === answer.name) answered ??= p
    else calls.push({ id: p.id, type: 'function', function: { name: p.name, arguments: p.args } })
  }
  // Other tools called in the same turn win: their results may change the answer, which comes next turn.
  if (answered?.type === 'tool' && calls.length === 0) {
    return {
      message: { role: 'assistant', content: answerOf(answered, answer) },
      usage,
      finishReason: 'stop',
    }
  }
  const content = sawText ? text : null
  const message: AssistantMessage =
    calls.length === 0 ? { role: 'assistant', content } : { role: 'assistant', content, tool_calls: calls }
  return { message, usage, finishReason: calls.length > 0 ? 'tool_calls' : finishOf(stop) }
}

function answerOf(call: Extract<Part, { type: 'tool' }>, answer: AnswerTool | undefined): string {
  // Input that is not JSON goes on as it came: the loop's validation says what is wrong with it.
  if (call.input === undefined) return call.args
  const input = call.input
  if (answer?.wrapped === true && typeof input === 'object' && input !== null && 'value' in input) {
    return JSON.stringify(input.value)
  }
  return JSON.stringify(input)
}

function finishOf(stop: StopReason | null): FinishReason {
  switch (stop) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'refusal':
      return 'content_filter'
    default:
      return 'stop'
  }
}

function usageOf(
  input: number,
  cacheCreation: number | null,
  cacheRead: number | null,
  output: number,
): Usage {
  // Cached input is still input: Anthropic counts it apart from input_tokens, OpenAI within prompt_tokens.
  const promptTokens = input + (cacheCreation ?? 0) + (cacheRead ?? 0)
  return { promptTokens, completionTokens: output, totalTokens: promptTokens + output }
}

/** The JSON value of `text`, or undefined when it is not JSON. */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** The SDK's errors as ProviderErrors, credentials redacted. The caller has already handled an abort. */
function providerError(err: unknown, secrets: Redactor, config: ProviderConfig): ProviderError {
  if (err instanceof ProviderError) return err
  if (err instanceof APIConnectionTimeoutError) {
    const within = config.timeoutMs === undefined ? '' : ` within ${String(config.timeoutMs)} ms`
    return new ProviderError(`the model ${config.model} did not answer${within}`, { code: 'timeout' })
  }
  if (err instanceof APIUserAbortError) {
    return new ProviderError('the request to the model was aborted', { code: 'aborted' })
  }
  if (err instanceof APIConnectionError) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
    const where = config.baseUrl ?? ANTHROPIC_BASE_URL
    return new ProviderError(redact(`could not reach ${where}${cause}`, secrets), { code: 'connection' })
  }
  if (err instanceof APIError) {
    const detail = err.apiMessage ?? err.message
    // `instanceof` on the generic class leaves the status typed `any`.
    const status: unknown = err.status
    if (typeof status === 'number') {
      return new ProviderError(redact(`${String(status)} ${detail}`, secrets), {
        status,
        code: err.type ?? `http_${String(status)}`,
      })
    }
    // An `error` event in the middle of a stream (overloaded_error, ...): no status, but the upstream's type.
    return new ProviderError(redact(`the model ${config.model} failed while answering: ${detail}`, secrets), {
      code: err.type ?? 'bad_response',
    })
  }
  // Anything else arrived while reading the answer: a stream that is not valid SSE/JSON, or a cut connection.
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : ''
  const detail = err instanceof Error ? `${err.message}${cause}` : String(err)
  return new ProviderError(redact(`the answer of ${config.model} could not be read: ${detail}`, secrets), {
    code: 'bad_response',
  })
}
