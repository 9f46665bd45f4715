/**
 * `openai` and `azure`: OpenAI's chat completions through the `openai` SDK, for OpenAI itself, Azure OpenAI and
 * any OpenAI-compatible server (Ollama, vLLM, LM Studio) at a `baseUrl`.
 *
 * One SDK client per Model, reused for every call, so connections stay warm. Retries (408/409/429/5xx and
 * connection errors, exponential backoff, Retry-After honoured) and the per-attempt timeout are the SDK's own;
 * the task's signal reaches every request, so a cancelled or timed-out task aborts the upstream call.
 *
 * Chat completions (`forward` for model/<name>, and the agents' calls, streamed or not) are the exception:
 * they go out through wire.ts, to the URL and with the headers the SDK works out once, under the same retry
 * policy, and a stream's events are read with sse.ts. On those paths the SDK's per-call work was most of
 * ark's CPU (bench/ passthrough and agent). The SDK still builds that URL and those headers, and serves the
 * probes.
 */
import OpenAI, { AzureOpenAI } from 'openai'
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions'
import type { AssistantMessage, ToolCall, Usage } from '../messages.ts'
import type { Completion, FinishReason, Provider, ProviderConfig } from '../provider.ts'
import { ProviderError, abortReason, propertyValues, redact, redactorOf } from '../provider.ts'
import type { Redactor } from '../redactor.ts'
import { sseObjects } from './sse.ts'
import { poster, wireOf } from './wire.ts'

const OPENAI_BASE_URL = 'https://api.openai.com/v1'
const AZURE_API_VERSION = '2024-10-21'

export function createOpenAIProvider(config: ProviderConfig): Provider {
  const secrets = redactorOf(config)
  const client = clientFor(config)
  const defaults = propertyValues(config.properties)
  // OpenAI and Azure take max_completion_tokens (the o-series refuse max_tokens); compatible servers know
  // max_tokens best.
  const maxTokensField =
    config.provider === 'azure' || config.baseUrl === undefined ? 'max_completion_tokens' : 'max_tokens'
  const fail = (err: unknown, signal: AbortSignal) => providerError(err, signal, secrets, config.timeoutMs)
  const post = poster({
    send: config.fetch ?? fetch,
    wire: async () =>
      wireOf(
        await client.buildRequest({
          method: 'post',
          path: '/chat/completions',
          body: { model: config.model },
        }),
      ),
    timeoutMs: config.timeoutMs,
    maxRetries: config.maxRetries,
    errors: {
      connection: (cause) => new OpenAI.APIConnectionError({ cause }),
      status: (status, json, text, headers) => OpenAI.APIError.generate(status, json, text, headers),
    },
  })

  return {
    provider: config.provider,
    model: config.model,

    async complete(request) {
      const params: Record<string, unknown> = {
        ...request.defaults,
        ...defaults,
        ...request.parameters,
        model: config.model,
        messages: request.messages,
      }
      if (request.tools.length > 0) params.tools = request.tools
      if (request.outputSchema !== undefined) {
        params.response_format = {
          type: 'json_schema',
          // strict mode would refuse ordinary schemas (it wants every property required and no extra
          // keywords); the runtime validates the answer itself and asks once more when it does not match.
          json_schema: { name: 'output', schema: request.outputSchema, strict: false },
        }
      } else if (request.json === true && params.response_format === undefined) {
        // JSON mode wants the word JSON in the conversation: the agent's prompt, which asks for it, has it.
        params.response_format = { type: 'json_object' }
      }
      const cap = replyCap(params, request.maxTokens, request.replyBudget)
      if (cap !== undefined) {
        delete params.max_tokens
        delete params.max_completion_tokens
        params[maxTokensField] = cap
      }
      const { signal, onDelta } = request
      try {
        if (onDelta === undefined) {
          const res = await post(params, signal)
          return completionOf((await res.json()) as ChatCompletion, config.model)
        }
        const res = await post({ ...params, stream: true, stream_options: { include_usage: true } }, signal)
        return await collect(chunksOf(res, signal), onDelta, config.model)
      } catch (err) {
        throw fail(err, signal)
      }
    },

    async probe(signal) {
      try {
        if (config.provider === 'azure') {
          // Azure names deployments, not models: reaching it with a working key is the check.
          await client.models.list({ signal, maxRetries: 0 })
          return
        }
        await client.models.retrieve(config.model, { signal, maxRetries: 0 })
      } catch (err) {
        const e = fail(err, signal)
        // Some compatible servers (vLLM) only list models; a 404 there may be the route, not the model.
        if (e.status === 404 && (await listed(client, config.model, signal))) return
        if (e.status === 404) {
          throw new ProviderError(`the model ${config.model} does not exist upstream (${e.message})`, {
            status: 404,
            code: 'model_not_found',
          })
        }
        throw e
      }
    },

    async forward(body, signal) {
      try {
        return await post({ ...defaults, ...body, model: config.model }, signal)
      } catch (err) {
        throw fail(err, signal)
      }
    },
  }
}

/**
 * The smallest output limit of current OpenAI chat models (gpt-4o: 16,384); a budget above it is not sent as
 * a cap when nothing else set one, because the API refuses a cap above the model's limit.
 */
const SAFE_REPLY_CAP = 16_384

/** The reply cap to send, if any: the client's or the Model's, bounded by the token budget. */
function replyCap(
  params: Readonly<Record<string, unknown>>,
  requested: number | undefined,
  budget: number | undefined,
): number | undefined {
  const own = params.max_completion_tokens ?? params.max_tokens
  const current = requested ?? (typeof own === 'number' ? own : undefined)
  if (budget === undefined) return requested
  if (current === undefined) return budget <= SAFE_REPLY_CAP ? budget : undefined
  return Math.min(current, budget)
}

function clientFor(config: ProviderConfig): OpenAI {
  const options = {
    ...(config.timeoutMs === undefined ? {} : { timeout: config.timeoutMs }),
    ...(config.maxRetries === undefined ? {} : { maxRetries: config.maxRetries }),
    // Failures reach callers as ProviderErrors; the SDK's console lines would bypass the JSON logs and could
    // print what an upstream sent.
    logLevel: 'off' as const,
  }
  if (config.provider === 'azure') {
    if (config.baseUrl === undefined) {
      throw new ProviderError('an azure Model needs its endpoint in baseUrl', { code: 'misconfigured' })
    }
    return new AzureOpenAI({
      endpoint: config.baseUrl,
      // Else the SDK takes OPENAI_BASE_URL from the environment (set for OpenAI-compatible servers) and
      // refuses to start: "baseURL and endpoint are mutually exclusive".
      baseURL: null,
      apiKey: config.apiKey ?? missingKey('azure'),
      apiVersion: config.apiVersion ?? AZURE_API_VERSION,
      defaultHeaders: config.headers,
      ...(config.fetch === undefined ? {} : { fetch: config.fetch }),
      ...options,
    })
  }
  // A self-hosted server (Ollama) needs no key: send none rather than a made-up one, unless the Model sets
  // its own Authorization header (a proxy's token).
  const keyless = config.apiKey === undefined && config.baseUrl !== undefined
  const ownAuth = Object.keys(config.headers).some((h) => h.toLowerCase() === 'authorization')
  return new OpenAI({
    apiKey: config.apiKey ?? (keyless ? 'unused' : missingKey('openai')),
    baseURL: config.baseUrl ?? OPENAI_BASE_URL,
    defaultHeaders: keyless && !ownAuth ? { ...config.headers, Authorization: null } : config.headers,
    // Only what the Model says goes upstream, not OPENAI_ORG_ID/OPENAI_PROJECT_ID from the environment.
    organization: null,
    project: null,
    ...(config.fetch === undefined ? {} : { fetch: config.fetch }),
    ...options,
  })
}

function missingKey(provider: string): never {
  throw new ProviderError(
    `the ${provider} model has no API key: set it in the Model (apiKey, e.g. from a Secret) or in ${provider === 'azure' ? 'AZURE_OPENAI_API_KEY' : 'OPENAI_API_KEY'}`,
    { code: 'missing_api_key' },
  )
}

async function listed(client: OpenAI, model: string, signal: AbortSignal): Promise<boolean> {
  try {
    const page = await client.models.list({ signal, maxRetries: 0 })
    return page.data.some((m) => m.id === model || m.id === `${model}:latest`)
  } catch {
    return false
  }
}

function completionOf(res: ChatCompletion, model: string): Completion {
  const choice = res.choices[0]
  if (choice === undefined) {
    throw new ProviderError(`the model ${model} answered without a choice`, { code: 'bad_response' })
  }
  const m = choice.message
  const calls: ToolCall[] = []
  for (const c of m.tool_calls ?? []) {
    if (c.type === 'function') {
      calls.push({
        id: c.id,
        type: 'function',
        function: { name: c.function.name, arguments: c.function.arguments },
      })
    }
  }
  const content = m.content ?? (typeof m.refusal === 'string' ? m.refusal : null)
  const message: AssistantMessage =
    calls.length === 0 ? { role: 'assistant', content } : { role: 'assistant', content, tool_calls: calls }
  return { message, usage: usageOf(res.usage), finishReason: finishOf(choice.finish_reason, calls.length) }
}

/**
 * The chunks of a streamed chat completion. An `error` event (what OpenAI-compatible servers send when they
 * fail mid-stream) becomes the SDK's APIError, as the SDK's own stream reader raises it.
 */
async function* chunksOf(res: Response, signal: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
  // Plain errors (sse.ts): providerError words them as an answer that could not be read, through the redactor.
  for await (const chunk of sseObjects(res, signal, '[DONE]')) {
    if ('error' in chunk && chunk.error !== undefined && chunk.error !== null)
      throw new OpenAI.APIError(undefined, chunk.error, undefined, res.headers)
    yield chunk as ChatCompletionChunk
  }
}

/** Assembles a stream: text goes to `onDelta` as it arrives, tool calls are put together from their fragments. */
async function collect(
  stream: AsyncIterable<ChatCompletionChunk>,
  onDelta: (text: string) => void | Promise<void>,
  model: string,
): Promise<Completion> {
  let content = ''
  let sawContent = false
  let finish: string | null = null
  let usage: Usage | undefined
  const calls: { id: string; name: string; args: string }[] = []
  for await (const chunk of stream) {
    if (chunk.usage !== undefined && chunk.usage !== null) usage = usageOf(chunk.usage)
    const choice = chunk.choices[0]
    if (choice === undefined) continue
    const delta = choice.delta
    const text = delta.content ?? delta.refusal
    if (typeof text === 'string' && text !== '') {
      sawContent = true
      content += text
      // A slow reader: the SDK's stream is not read on until it caught up, and TCP holds the upstream back.
      const paused = onDelta(text)
      if (paused !== undefined) await paused
    }
    for (const t of delta.tool_calls ?? []) {
      let call = calls[t.index]
      if (call === undefined) calls[t.index] = call = { id: '', name: '', args: '' }
      if (t.id !== undefined) call.id = t.id
      if (t.function?.name !== undefined) call.name += t.function.name
      if (t.function?.arguments !== undefined) call.args += t.function.arguments
    }
    if (choice.finish_reason !== null) finish = choice.finish_reason
  }
  if (finish === null && !sawContent && calls.length === 0) {
    throw new ProviderError(`the stream of model ${model} ended before any answer`, { code: 'bad_response' })
  }
  const toolCalls: ToolCall[] = calls
    .filter((c) => c.name !== '')
    .map((c, i) => ({
      id: c.id === '' ? `call_${String(i)}` : c.id,
      type: 'function',
      function: { name: c.name, arguments: c.args },
    }))
  const message: AssistantMessage =
    toolCalls.length === 0
      ? { role: 'assistant', content: sawContent ? content : null }
      : { role: 'assistant', content: sawContent ? content : null, tool_calls: toolCalls }
  return {
    message,
    usage: usage ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    finishReason: finishOf(finish, toolCalls.length),
  }
}

function usageOf(u: ChatCompletion['usage']): Usage {
  if (u === undefined) return { promptTokens: 0, completionTokens: 0, totalTokens: 0 }
  return { promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens, totalTokens: u.total_tokens }
}

function finishOf(reason: string | null, toolCalls: number): FinishReason {
  if (toolCalls > 0) return 'tool_calls'
  if (reason === 'length' || reason === 'content_filter') return reason
  return 'stop'
}

/**
 * The SDK's errors as ProviderErrors, keys redacted. An abort is not the provider's failure: the signal's own
 * reason is thrown so the loop can tell a timeout from a cancellation.
 */
export function providerError(
  err: unknown,
  signal: AbortSignal,
  secrets: Redactor,
  timeoutMs: number | undefined,
): ProviderError {
  if (signal.aborted) throw abortReason(signal)
  if (err instanceof ProviderError) return err
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    const after = timeoutMs === undefined ? '' : ` within ${String(timeoutMs)} ms`
    return new ProviderError(`the model did not answer${after}`, { code: 'timeout' })
  }
  if (err instanceof OpenAI.APIUserAbortError) {
    return new ProviderError('the request to the model was aborted', { code: 'aborted' })
  }
  if (err instanceof OpenAI.APIConnectionError) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
    return new ProviderError(redact(`could not reach the model${cause}`, secrets), { code: 'connection' })
  }
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const status: number = err.status
    const body = err.error as { message?: unknown } | undefined
    const detail = typeof body?.message === 'string' ? body.message : err.message
    const code = err.code ?? err.type ?? `http_${String(status)}`
    return new ProviderError(redact(`${String(status)} ${detail}`, secrets), { status, code })
  }
  // Anything else arrived while reading the answer: a stream that is not valid SSE/JSON, or a cut connection.
  const detail = err instanceof Error ? err.message : String(err)
  return new ProviderError(redact(`the model's answer could not be read: ${detail}`, secrets), {
    code: 'bad_response',
  })
}
