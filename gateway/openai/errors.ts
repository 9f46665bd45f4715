import type { Catalog } from '../../controller/store/index.ts'

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
  404: 'invalid_request_error',
  405: 'invalid_request_error',
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

/**
 * The 503 for a target whose Available condition is not True, with the condition's reason as its code;
 * undefined when the target is available.
 */
export function unavailable(
  catalog: Catalog,
  key: string,
  id: string,
  options: Pick<ErrorOptions, 'retry'> = {},
): Response | undefined {
  const available = catalog.status(key)?.conditions.find((x) => x.type === 'Available')
  if (available?.status === 'True') return undefined
  const reason = available?.reason ?? 'Pending'
  return errorResponse(
    503,
    `${id} is not available: ${reason}: ${available?.message ?? 'its availability has not been computed yet'}`,
    { code: reason, ...options },
  )
}
