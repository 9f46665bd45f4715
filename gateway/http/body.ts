/**
 * Reading a request body, as middleware (Hono's body-limit is the model): the body must say it is JSON, fit in
 * a byte bound, arrive within a time bound, be UTF-8 and parse. What is wrong is a `Refusal` that the route's
 * protocol renders in its own error shape (OpenAI's error body, a JSON-RPC error, ...), so every protocol
 * reads bodies the same way and none of them can forget a bound.
 */
import type { MiddlewareHandler } from 'hono'
import type { Refusal } from '../admission.ts'
import type { ConnectionBindings } from '../serve.ts'

export interface BodyLimits {
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number
  /**
   * Longest a client may take to send its body, from the handler's start: a client that trickles a body byte
   * by byte would otherwise hold a socket and a buffer for as long as it likes.
   */
  readonly timeoutMs: number
}

/** What the middleware leaves for the handler. */
export interface BodyVariables {
  body: unknown
}

/** Renders a refusal in the route's protocol. */
export type RefusalRenderer = (refusal: Refusal) => Response

const utf8 = new TextDecoder('utf-8', { fatal: true })
const JSON_TYPE = /^application\/([\w.+-]*\+)?json\s*(;|$)/i

/**
 * Parses the JSON body into `c.get('body')`, or answers with the refusal that says why it cannot. A body that
 * is not JSON by its Content-Type is refused before it is read: browsers send such bodies cross-site
 * without asking (form posts, `text/plain` fetches), so a JSON-only API is not reachable that way.
 *
 * A body the runtime adapter has parsed already, by these same rules (serve-node's lane), is taken as it is.
 */
export function jsonBody(
  limits: BodyLimits,
  render: RefusalRenderer,
): MiddlewareHandler<{ Bindings: ConnectionBindings | undefined; Variables: BodyVariables }> {
  return async (c, next) => {
    const parsed = c.env?.body ?? (await readJson(c.req.raw, limits))
    if ('refusal' in parsed) return render(parsed.refusal)
    c.set('body', parsed.value)
    await next()
    return undefined
  }
}

export type Parsed = { readonly value: unknown } | { readonly refusal: Refusal }

const refuse = (status: number, code: string, message: string): Parsed => ({
  refusal: { status, code, message },
})

export async function readJson(req: Request, limits: BodyLimits): Promise<Parsed> {
  const type = req.headers.get('content-type')
  const notJson = jsonTypeRefusal(type)
  if (notJson !== undefined) return notJson
  let bytes: Uint8Array | 'too_large' | 'too_slow'
  try {
    bytes = await readBody(req, limits)
  } catch {
    // The client went away mid-body (nobody waits for the answer; 499 is how it is counted), or sent framing
    // the runtime could not read.
    return unreadable(req.signal.aborted)
  }
  if (bytes === 'too_large') {
    return refuse(
      413,
      'request_too_large',
      `the request body is larger than ${String(limits.maxBytes)} bytes (ark dev --max-body-bytes, ARK_MAX_BODY_BYTES)`,
    )
  }
  if (bytes === 'too_slow') return tooSlow(limits)
  return parseJson(bytes)
}

/** The refusal of a Content-Type that is not JSON (or of none); undefined for JSON. */
export function jsonTypeRefusal(type: string | null | undefined): Parsed | undefined {
  if (type === null || type === undefined || !JSON_TYPE.test(type.trim())) {
    return refuse(
      415,
      'unsupported_media_type',
      type === null || type === undefined
        ? "the request has no Content-Type; send the body as JSON with Content-Type: application/json (curl: -H 'Content-Type: application/json')"
        : `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 100))} (curl: add -H 'Content-Type: application/json')`,
    )
  }
  return undefined
}

/** The refusal of a body that could not be read to its end: the client went away, or its framing broke. */
export function unreadable(clientGone: boolean): Parsed {
  return clientGone
    ? refuse(499, 'client_closed_request', 'the client closed the request while sending its body')
    : refuse(400, 'invalid_body', 'the request body could not be read to its end')
}

/** The refusal of a body that did not arrive within the time bound. */
export function tooSlow(limits: BodyLimits): Parsed {
  return refuse(
    408,
    'request_timeout',
    `the request body did not arrive within ${String(limits.timeoutMs / 1000)} s (ark dev --body-timeout, ARK_BODY_TIMEOUT)`,
  )
}

/** A whole body's bytes as JSON: UTF-8, not empty, parsed; or the refusal that says which of those it is not. */
export function parseJson(bytes: Uint8Array): Parsed {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return refuse(400, 'invalid_encoding', 'the request body is not valid UTF-8')
  }
  if (text.trim() === '') return refuse(400, 'invalid_json', 'the request body is empty; send a JSON object')
  try {
    return { value: JSON.parse(text) as unknown }
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err)
    return refuse(400, 'invalid_json', `the request body is not valid JSON: ${detail.slice(0, 200)}`)
  }
}

/**
 * Reads at most `maxBytes` within `timeoutMs`. A too-large body is still read (and dropped) up to a bound,
 * because a server that answers while the client is still sending resets the connection and the client
 * never sees the 413 that says what to change.
 */
async function readBody(req: Request, limits: BodyLimits): Promise<Uint8Array | 'too_large' | 'too_slow'> {
  const { maxBytes } = limits
  const drainLimit = maxBytes + 16 * 1024 * 1024
  const length = req.headers.get('content-length')
  const declared = Number(length ?? 0)
  if (declared > drainLimit) return 'too_large'
  let timer: ReturnType<typeof setTimeout> | undefined
  let onLate = () => {}
  const late = new Promise<'too_slow'>((resolve) => {
    timer = setTimeout(() => {
      onLate()
      resolve('too_slow')
    }, limits.timeoutMs)
  })
  try {
    // A declared length the HTTP parser holds the body to: read it whole. The runtime adapters read such a
    // body straight from the socket, while going through the stream costs a WHATWG reader per call (on
    // Node, as much CPU as the rest of a proxied request).
    if (length !== null && declared <= maxBytes) {
      const whole = req.arrayBuffer().then((b) => new Uint8Array(b))
      // Given up on: what it still reads is bounded by the declared length, and the answer closes the socket.
      whole.catch(() => {})
      return await Promise.race([whole, late])
    }
    // Only now the body stream: touching `req.body` makes the Node adapter build a whole Request.
    if (req.body === null) return new Uint8Array(0)
    const reader = req.body.getReader()
    onLate = () => {
      reader.cancel().catch(() => {})
    }
    return await Promise.race([readAtMost(reader, maxBytes, drainLimit), late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A stream's bytes, whole, if there are at most `maxBytes` of them; `too_large` otherwise. Past `drainLimit`
 * (default `maxBytes`) the stream is cancelled; up to it, what is too much is read and dropped.
 */
export async function readAtMost(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxBytes: number,
  drainLimit = maxBytes,
): Promise<Uint8Array | 'too_large'> {
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > drainLimit) {
      await reader.cancel()
      return 'too_large'
    }
    if (size <= maxBytes) parts.push(value)
  }
  if (size > maxBytes) return 'too_large'
  if (parts.length === 1 && parts[0] !== undefined) return parts[0]
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}
