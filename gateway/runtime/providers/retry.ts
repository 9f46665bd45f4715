/**
 * One upstream HTTP call with the retry policy of the OpenAI and Anthropic SDKs, for the path that skips
 * the SDK: `model/<name>` passthrough sends the client's body as it came, and the SDK's own per-call work
 * (building options, headers, its retry bookkeeping) cost more CPU than the rest of the proxied request
 * together (bench/ passthrough). The policy is theirs so that a Model behaves the same on both paths:
 *
 * - retried: connection errors, attempt timeouts, and 408, 409, 429 and 5xx, unless the upstream says
 *   `x-should-retry: false` (or asks for a retry with `true`);
 * - the wait: `retry-after-ms` or `retry-after` (seconds or an HTTP date) when under a minute, else
 *   0.5 s doubling per retry up to 8 s, minus up to a quarter of jitter;
 * - each attempt has its own timeout, until the response headers (or a whole non-streamed body) arrive.
 */
import { ProviderError, abortReason, sleep } from '../provider.ts'

export interface RetryOptions {
  readonly signal: AbortSignal
  readonly timeoutMs: number
  readonly maxRetries: number
}

type Fetch = (input: string, init: RequestInit) => Promise<Response>

/**
 * The last response (any status; the caller reads errors), or throws: the signal's reason when the caller
 * gave up, a ProviderError `timeout` when the last attempt timed out, the fetch error when it could not
 * connect.
 */
export async function fetchWithRetries(
  send: Fetch,
  url: string,
  init: RequestInit,
  options: RetryOptions,
): Promise<Response> {
  const { signal } = options
  for (let retry = 0; ; retry++) {
    // A listener never fires for a signal aborted already: nothing may be sent for a caller who gave up.
    if (gaveUp(signal)) throw abortReason(signal)
    const attempt = new AbortController()
    const onAbort = () => attempt.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    const timer = setTimeout(
      () => attempt.abort(new DOMException('attempt timed out', 'TimeoutError')),
      options.timeoutMs,
    )
    let failure: unknown
    let response: Response | undefined
    try {
      response = await send(url, { ...init, signal: attempt.signal })
    } catch (err) {
      failure = err
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
    if (gaveUp(signal)) {
      await response?.body?.cancel()
      throw abortReason(signal)
    }
    const last = retry >= options.maxRetries
    if (response !== undefined) {
      if (last || !shouldRetry(response)) return response
      await response.body?.cancel()
    } else if (last) {
      if (attempt.signal.aborted) {
        throw new ProviderError(`the model did not answer within ${String(options.timeoutMs)} ms`, {
          code: 'timeout',
        })
      }
      throw failure
    }
    await sleep(retryDelayMs(response?.headers, retry), signal)
  }
}

/** Read through a call: TypeScript narrows `signal.aborted` after one check and would not re-read it. */
function gaveUp(signal: AbortSignal): boolean {
  return signal.aborted
}

function shouldRetry(response: Response): boolean {
  const hint = response.headers.get('x-should-retry')
  if (hint === 'true') return true
  if (hint === 'false') return false
  const s = response.status
  return s === 408 || s === 409 || s === 429 || s >= 500
}

/** The upstream's wish when it states one under a minute; otherwise exponential backoff with jitter. */
export function retryDelayMs(headers: Headers | undefined, retry: number): number {
  const ms = headers?.get('retry-after-ms')
  const after = headers?.get('retry-after')
  let wanted: number | undefined
  if (ms !== null && ms !== undefined && ms !== '' && Number.isFinite(Number(ms))) wanted = Number(ms)
  else if (after !== null && after !== undefined && after !== '') {
    const seconds = Number(after)
    wanted = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(after) - Date.now()
  }
  if (wanted !== undefined && Number.isFinite(wanted) && wanted >= 0 && wanted < 60_000) return wanted
  const backoff = Math.min(0.5 * 2 ** retry, 8)
  return backoff * (1 - Math.random() * 0.25) * 1000
}
