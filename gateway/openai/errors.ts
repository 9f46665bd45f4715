import type { Refusal } from '../admission.ts'
import type { StreamAbort } from '../http/response-stream.ts'
import type { Logger } from '../log.ts'

/**
 * Errors in OpenAI's body shape, `{"error":{"message","type","param","code"}}`, so that every OpenAI client
 * (the SDKs, LangChain) surfaces them as it would OpenAI's own.
 */
export interface OpenAIErrorBody {
  readonly message: string
  readonly type: string
  readonly param: string | null
  readonly code: string | null
}

export interface ErrorOptions {
  readonly type?: string
  readonly param?: string | null
  readonly code?: string | null
  readonly headers?: Readonly<Record<string, string>>
  /**
   * The OpenAI SDKs retry 408, 409, 429 and 5xx unless told not to. A run that failed on its own terms (timed
   * out, hit its iteration bound) would only fail again, at full cost, so those say `x-should-retry: false`.
   */
  readonly retry?: boolean
}

const DEFAULT_TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  403: 'invalid_request_error',
  404: 'invalid_request_error',
  405: 'invalid_request_error',
  408: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable',
}

export function errorBody(status: number, message: string, options: ErrorOptions = {}): OpenAIErrorBody {
  return {
    message,
    type: options.type ?? DEFAULT_TYPE[status] ?? 'server_error',
    param: options.param ?? null,
    code: options.code ?? null,
  }
}

export function errorResponse(status: number, message: string, options: ErrorOptions = {}): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers }
  if (options.retry === false) headers['x-should-retry'] = 'false'
  return new Response(JSON.stringify({ error: errorBody(status, message, options) }), { status, headers })
}

/** OpenAI's names for admission's codes, where OpenAI has its own. */
const OPENAI_CODES: Readonly<Record<string, string>> = { not_found: 'model_not_found' }

/** A refusal (gateway/admission.ts, gateway/http/body.ts) as OpenAI's error response. */
export function renderRefusal(refusal: Refusal): Response {
  const headers: Record<string, string> = { ...refusal.headers }
  if (refusal.retryAfterSeconds !== undefined) headers['retry-after'] = String(refusal.retryAfterSeconds)
  const code = OPENAI_CODES[refusal.code] ?? refusal.code
  const message = refusal.code === 'not_found' ? `The model ${refusal.message}` : refusal.message
  return errorResponse(refusal.status, message, {
    code,
    ...(refusal.param === undefined ? {} : { param: refusal.param }),
    ...(refusal.retry === undefined ? {} : { retry: refusal.retry }),
    headers,
  })
}

/** An error after a stream began: OpenAI's error object as a data event, which the SDKs raise. */
export function errorEvent(body: OpenAIErrorBody): string {
  return `data: ${JSON.stringify({ error: body })}\n\n`
}

/**
 * The last event of a stream ark cut (the client stalled, or fell too far behind), for a client that reads
 * again; nothing when the client itself went away.
 */
export function cutStreamEvent(why: StreamAbort): string | undefined {
  const body = cutStreamError(why)
  return body === undefined ? undefined : errorEvent(body)
}

/** Why ark cut a stream, as an error body; nothing when the client itself went away. */
export function cutStreamError(why: StreamAbort): OpenAIErrorBody | undefined {
  if (why.reason === 'client_gone') return undefined
  return errorBody(408, `the stream was cut: ${why.message}`, { code: 'stream_stalled' })
}

/** A stream that failed in the gateway itself, after its answer began: logged, and told as a 500 body. */
export function streamFailure(log: Logger, task: string, err: unknown): OpenAIErrorBody {
  log.error('stream failed', { task, error: err instanceof Error ? err.message : String(err) })
  return errorBody(500, 'the gateway failed while streaming; see its log', { code: 'internal_error' })
}
