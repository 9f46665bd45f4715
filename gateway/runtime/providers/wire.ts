/**
 * A provider's calls without its SDK's per-call work. The SDK still works out where a call goes and what it
 * carries (URL, authentication, API version, the Model's headers), once per provider; each call is then one
 * JSON POST under the SDKs' retry policy (retry.ts), and its errors are the SDK's own error classes, so that
 * a provider maps them as it always did. On the chat paths the SDKs' per-call work (options, headers, retry
 * bookkeeping, their stream machinery) was most of ark's CPU (bench/ passthrough and agent).
 */
import { PROVIDER_DEFAULTS } from '../provider.ts'
import { fetchWithRetries } from './retry.ts'

export interface Wire {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
}

/** Headers that describe one attempt, not the Model: the transport and the retry loop set their own. */
const PER_ATTEMPT = new Set([
  'content-length',
  'idempotency-key',
  'x-stainless-retry-count',
  'x-stainless-timeout',
])

/** The Wire of a request an SDK built (its `buildRequest`), without what belongs to one attempt. */
export function wireOf(built: {
  readonly url: string
  readonly req: { readonly headers?: ConstructorParameters<typeof Headers>[0] }
}): Wire {
  const headers: Record<string, string> = {}
  new Headers(built.req.headers).forEach((value, name) => {
    if (!PER_ATTEMPT.has(name)) headers[name] = value
  })
  return { url: built.url, headers }
}

/** How an SDK words what went wrong: the errors its callers already map. */
export interface SdkErrors {
  /** The upstream could not be reached (fetch's TypeError is the cause). */
  connection(cause: TypeError): Error
  /** A status that is not 2xx, with the body as JSON when it is JSON, else as text. */
  status(status: number, json: object | undefined, text: string | undefined, headers: Headers): Error
}

export interface PosterOptions {
  readonly send: (input: string, init: RequestInit) => Promise<Response>
  /** Asked on the first call, and again after it failed. */
  readonly wire: () => Promise<Wire>
  readonly timeoutMs?: number | undefined
  readonly maxRetries?: number | undefined
  readonly errors: SdkErrors
}

/** POSTs params as JSON; the response when it is 2xx, else throws the SDK's error for it. */
export type Poster = (params: Readonly<Record<string, unknown>>, signal: AbortSignal) => Promise<Response>

export function poster(options: PosterOptions): Poster {
  let wire: Promise<Wire> | undefined
  return async (params, signal) => {
    const payload = JSON.stringify(params)
    wire ??= options.wire().catch((err: unknown) => {
      wire = undefined
      throw err
    })
    const { url, headers } = await wire
    let res: Response
    try {
      res = await fetchWithRetries(
        options.send,
        url,
        { method: 'POST', headers, body: payload },
        {
          signal,
          timeoutMs: options.timeoutMs ?? PROVIDER_DEFAULTS.timeoutMs,
          maxRetries: options.maxRetries ?? PROVIDER_DEFAULTS.maxRetries,
        },
      )
    } catch (err) {
      throw err instanceof TypeError ? options.errors.connection(err) : err
    }
    if (res.ok) return res
    const text = await res.text()
    const json = parseJson(text)
    const body = typeof json === 'object' && json !== null ? json : undefined
    throw options.errors.status(res.status, body, body === undefined ? text : undefined, res.headers)
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}
