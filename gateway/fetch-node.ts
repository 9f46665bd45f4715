/**
 * Upstream calls on Node: a `fetch` over node:http(s) with keep-alive agents, handed to the providers (and
 * through them to the OpenAI and Anthropic SDKs) in place of the global fetch.
 *
 * Why not the global fetch: Node's fetch (undici behind WHATWG streams) costs a few hundred microseconds of
 * CPU per call, several times what the rest of a proxied request costs; measured in bench/ (passthrough),
 * a gateway on it tops out near 3k requests/s on 2 cores where node:http reaches about 9k. Deno's fetch is
 * native and needs no such help, so serve-deno runs with the global one.
 *
 * What it implements is what the providers use: string or byte bodies, any HeadersInit, AbortSignal. Other
 * bodies (streams, forms) and Request objects go to the global fetch. Differences from fetch, on purpose:
 * redirects are returned, not followed (an upstream API that redirects a POST is misconfigured, and
 * following it would resend credentials elsewhere); a response that is not an event stream is read whole
 * before the promise resolves, so a timeout covers the body too and the caller gets a cheap buffered body.
 */
import type { IncomingMessage } from 'node:http'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { Readable } from 'node:stream'

// LIFO hands the most recently used (warmest, least likely to be closed by the server) socket out first.
const agents = {
  http: new HttpAgent({ keepAlive: true, scheduling: 'lifo' }),
  https: new HttpsAgent({ keepAlive: true, scheduling: 'lifo' }),
}

/**
 * The most a response that is not an event stream may hold, since it is read whole: far above any model's
 * answer or model list, and a bound on what a broken or hostile upstream can make the gateway hold.
 */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024

/** Statuses whose responses never have a body; `new Response` refuses one. */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

export function nodeFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const body = init.body ?? null
  if (
    input instanceof Request ||
    !(body === null || typeof body === 'string' || body instanceof Uint8Array)
  ) {
    return fetch(input, init)
  }
  const url = typeof input === 'string' ? new URL(input) : input
  const https = url.protocol === 'https:'
  if (!https && url.protocol !== 'http:') return fetch(input, init)
  const signal = init.signal ?? undefined
  if (signal?.aborted === true) return Promise.reject(signal.reason as Error)

  const method = init.method?.toUpperCase() ?? 'GET'
  const headers = headerRecord(init.headers)
  if (body !== null) headers['content-length'] = String(Buffer.byteLength(body))

  return new Promise<Response>((resolve, reject) => {
    const send = https ? httpsRequest : httpRequest
    const req = send(url, { method, headers, agent: https ? agents.https : agents.http })
    let response: IncomingMessage | undefined
    const onAbort = () => {
      const reason = signal?.reason as Error
      // Before the answer: the promise rejects. During a streamed body: the stream errors.
      req.destroy(reason)
      response?.destroy(reason)
      reject(reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    const settle = () => signal?.removeEventListener('abort', onAbort)
    req.once('error', (err) => {
      settle()
      // fetch's own shape for a network failure: a TypeError with the cause (the SDKs retry on it).
      reject(
        signal?.aborted === true ? (signal.reason as Error) : new TypeError('fetch failed', { cause: err }),
      )
    })
    req.once('response', (res) => {
      response = res
      const status = res.statusCode ?? 502
      const responseHeaders = toHeaders(res)
      const init = { status, statusText: res.statusMessage ?? '', headers: responseHeaders }
      if (NULL_BODY.has(status) || method === 'HEAD') {
        res.resume()
        settle()
        resolve(new Response(null, init))
        return
      }
      if (responseHeaders.get('content-type')?.includes('text/event-stream') === true) {
        // A stream is handed on as it arrives; the abort listener stays until it ends.
        res.once('close', settle)
        resolve(new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>, init))
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BUFFERED_BYTES) {
          res.destroy(new Error(`the response is larger than ${String(MAX_BUFFERED_BYTES)} bytes`))
          return
        }
        chunks.push(chunk)
      })
      res.once('end', () => {
        settle()
        resolve(bufferedResponse(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks), init))
      })
      res.once('error', (err) => {
        settle()
        reject(
          signal?.aborted === true ? (signal.reason as Error) : new TypeError('fetch failed', { cause: err }),
        )
      })
    })
    req.end(body ?? undefined)
  })
}

/**
 * A response read whole, whose readers get its bytes directly: a Response built on them would copy them
 * into a stream and read them back (undici's body extraction), about 13% of a proxied request's CPU
 * (bench/ passthrough). The stream exists only if someone asks for `body`.
 *
 * A real Response underneath (status, headers, instanceof), with the body members replaced. The DOM types
 * declare those members as properties, which a subclass may not redefine as methods, hence the base cast.
 */
const ResponseBase = Response as unknown as new (
  body: null,
  init: ResponseInit,
) => Pick<Response, 'headers' | 'status' | 'statusText'>

function bufferedResponse(bytes: Buffer, init: ResponseInit): Response {
  return new BufferedResponse(bytes, init) as unknown as Response
}

class BufferedResponse extends ResponseBase {
  readonly #bytes: Buffer
  #used = false
  /** Built on first use of `body`; from then on it answers for the body, with fetch's exact semantics. */
  #streamed: Response | undefined

  constructor(bytes: Buffer, init: ResponseInit) {
    super(null, init)
    this.#bytes = bytes
  }

  get body(): ReadableStream<Uint8Array> | null {
    return this.#stream().body
  }

  get bodyUsed(): boolean {
    return this.#streamed?.bodyUsed ?? this.#used
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#read(
      (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer,
      (r) => r.arrayBuffer(),
    )
  }

  bytes(): Promise<Uint8Array> {
    return this.#read(
      (b) => new Uint8Array(b),
      (r) => r.bytes(),
    )
  }

  text(): Promise<string> {
    return this.#read(
      (b) => b.toString('utf8'),
      (r) => r.text(),
    )
  }

  json(): Promise<unknown> {
    return this.#read(
      (b) => JSON.parse(b.toString('utf8')) as unknown,
      (r) => r.json(),
    )
  }

  blob(): Promise<Blob> {
    const type = this.headers.get('content-type') ?? ''
    return this.#read(
      (b) => new Blob([new Uint8Array(b)], { type }),
      (r) => r.blob(),
    )
  }

  clone(): Response {
    if (this.bodyUsed) throw new TypeError('Response.clone: the body has already been read')
    if (this.#streamed !== undefined) return this.#streamed.clone()
    return bufferedResponse(this.#bytes, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers,
    })
  }

  #stream(): Response {
    if (this.#streamed === undefined) {
      const streamed = new Response(new Uint8Array(this.#bytes), {
        status: this.status,
        headers: this.headers,
      })
      // Read already: the stream is there, and disturbed, as fetch's would be.
      if (this.#used) void streamed.body?.cancel()
      this.#streamed = streamed
    }
    return this.#streamed
  }

  #read<T>(fromBytes: (bytes: Buffer) => T, fromStream: (response: Response) => Promise<T>): Promise<T> {
    if (this.#streamed !== undefined) return fromStream(this.#streamed)
    if (this.#used) return Promise.reject(new TypeError('the body of this response has already been read'))
    this.#used = true
    try {
      return Promise.resolve(fromBytes(this.#bytes))
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

function headerRecord(init: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {}
  if (init === undefined) return out
  if (init instanceof Headers) {
    init.forEach((value, name) => {
      out[name] = value
    })
  } else if (Array.isArray(init)) {
    for (const [name, value] of init) addHeader(out, name, value)
  } else {
    for (const name in init) {
      const value = init[name]
      if (value !== undefined) addHeader(out, name, value)
    }
  }
  return out
}

/** A name given twice (in any case) is sent once with both values, as fetch's Headers combine them. */
function addHeader(out: Record<string, string>, name: string, value: string): void {
  const key = name.toLowerCase()
  const existing = out[key]
  out[key] = existing === undefined ? value : `${existing}, ${value}`
}

function toHeaders(res: IncomingMessage): Headers {
  const headers = new Headers()
  const raw = res.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string)
  return headers
}
