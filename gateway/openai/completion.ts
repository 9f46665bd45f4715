/**
 * Chat completion bodies and stream chunks, byte for byte in OpenAI's format. Chunks of one response share
 * everything but the delta, so the constant parts are serialized once per response.
 */
import type { ToolCall, Usage } from '../runtime/messages.ts'
import type { FinishReason } from '../runtime/provider.ts'
import type { OpenAIErrorBody } from './errors.ts'
import { errorEvent } from './errors.ts'

export interface CompletionIdentity {
  readonly id: string
  /** Unix seconds. */
  readonly created: number
  readonly model: string
}

/** A new completion's identity: an OpenAI-style id, now, and the model name the client will see. */
export function newIdentity(model: string): CompletionIdentity {
  return {
    id: `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`,
    created: Math.floor(Date.now() / 1000),
    model,
  }
}

/** Headers of a server-sent events response; `x-accel-buffering: no` keeps nginx from holding chunks back. */
export function streamHeaders(requestId: string): Record<string, string> {
  return {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    'x-request-id': requestId,
  }
}

export function completionBody(
  who: CompletionIdentity,
  content: string | null,
  finishReason: FinishReason,
  usage: Usage,
  toolCalls?: readonly ToolCall[],
): Record<string, unknown> {
  return {
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    choices: [
      {
        index: 0,
        message:
          toolCalls === undefined || toolCalls.length === 0
            ? { role: 'assistant', content, refusal: null, annotations: [] }
            : { role: 'assistant', content, refusal: null, annotations: [], tool_calls: toolCalls },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage: usageBody(usage),
    service_tier: 'default',
    system_fingerprint: null,
  }
}

export function usageBody(u: Usage): Record<string, number> {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.totalTokens }
}

/** Server-sent events of one streamed completion: each method returns a whole `data: ...\n\n` event. */
export class ChunkEncoder {
  readonly #head: string
  readonly #tail: string
  readonly #who: CompletionIdentity

  constructor(who: CompletionIdentity, includeUsage: boolean) {
    this.#who = who
    this.#head = `data: {"id":${JSON.stringify(who.id)},"object":"chat.completion.chunk","created":${String(who.created)},"model":${JSON.stringify(who.model)},"service_tier":"default","system_fingerprint":null,"choices":[{"index":0,"delta":`
    this.#tail = includeUsage ? ',"usage":null}\n\n' : '}\n\n'
  }

  /** The first chunk: the assistant role, no content yet. */
  role(): string {
    return `${this.#head}{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]${this.#tail}`
  }

  content(text: string): string {
    return `${this.#head}{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]${this.#tail}`
  }

  /** Tool calls of a direct model call, whole, in one chunk (OpenAI streams them in fragments; both parse). */
  toolCalls(calls: readonly ToolCall[]): string {
    const delta = calls.map((c, index) => ({ index, ...c }))
    return `${this.#head}{"tool_calls":${JSON.stringify(delta)}},"logprobs":null,"finish_reason":null}]${this.#tail}`
  }

  finish(reason: FinishReason): string {
    return `${this.#head}{},"logprobs":null,"finish_reason":"${reason}"}]${this.#tail}`
  }

  /** The extra chunk `stream_options.include_usage` asks for: no choices, the usage of the whole request. */
  usage(u: Usage): string {
    const w = this.#who
    return `data: ${JSON.stringify({
      id: w.id,
      object: 'chat.completion.chunk',
      created: w.created,
      model: w.model,
      service_tier: 'default',
      system_fingerprint: null,
      choices: [],
      usage: usageBody(u),
    })}\n\n`
  }

  /** An error after the stream began: OpenAI's error object as a data event, which the SDKs raise. */
  error(body: OpenAIErrorBody): string {
    return errorEvent(body)
  }

  done(): string {
    return 'data: [DONE]\n\n'
  }
}
