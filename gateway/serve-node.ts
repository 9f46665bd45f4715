/**
 * Serving on Node: the app's fetch behind @hono/node-server's request listener, on a node:http server that
 * bounds how long a connection may take over each phase, and answers what Node refuses before the app sees
 * it (a header block too large, broken framing, an `Expect` it does not know, a slow request) in the same
 * JSON error shape as the app, instead of Node's empty bodies. Passthrough calls, given a lane, are answered
 * beside the app (openai/node-lane.ts).
 */
import { getRequestListener } from '@hono/node-server'
import { STATUS_CODES, createServer } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Parsed } from './http/body.ts'
import { DOT_SEGMENT_MESSAGE, hasDotSegment } from './http/guards.ts'
import { nodeLane } from './openai/node-lane.ts'
import { errorBody } from './openai/errors.ts'
import type { ServeFetch, ServeHandle, ServeOptions } from './serve.ts'
import { DRAINING_BODY, SERVE_DEFAULTS } from './serve.ts'

const PARSED = Symbol('parsed by the lane')

/** A request whose body the lane read before handing it to the app. */
interface ReadByLane {
  /** What @hono/node-server reads as the body instead of the stream. */
  rawBody: Buffer
  [PARSED]: Parsed
}

export function serveNode(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  const timeouts = { ...SERVE_DEFAULTS, ...options.timeouts }
  // The app may drop a connection (a stalled stream): the outgoing message's socket, destroyed. A body the
  // lane read goes with the request: its bytes as the adapter's `rawBody` (it reads those instead of the
  // spent stream), parsed as the app's `body`.
  const listener = getRequestListener(
    (request, env) => {
      const drop = () => env.outgoing.destroy()
      const body = (env.incoming as Partial<ReadByLane>)[PARSED]
      return fetch(request, body === undefined ? { drop } : { drop, body })
    },
    {
      // The adapter could not make a Request of it (an empty or malformed Host, an unusable URL): Node's own
      // answer would be an empty 400.
      errorHandler: (err) =>
        jsonResponse(
          400,
          'bad_request',
          `the request's Host header or URL is not valid: ${err instanceof Error ? err.message.slice(0, 100) : 'unknown'}`,
        ),
    },
  )
  const lane = options.lane === undefined ? undefined : nodeLane(options.lane)
  // Requests in flight (a response counts until it is closed, streams included), for drain.
  let active = 0
  let draining = false
  let idle: (() => void) | undefined
  const server = createServer(
    {
      // A connection that sends nothing, or its headers slowly, is cut after headersMs (Node counts from
      // the connection's first byte or, for a silent one, from its start).
      headersTimeout: timeouts.headersMs,
      // The whole request, body included; the app bounds the body on its own too (every runtime).
      requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
      keepAliveTimeout: timeouts.idleMs,
      // How often Node looks for connections past those bounds (default 30 s: a bound would be late by that).
      connectionsCheckingInterval: Math.min(1000, timeouts.headersMs),
    },
    (req, res) => {
      // Before the URL is parsed: WHATWG URL parsing resolves `/v1/%2e%2e/metrics` to `/metrics`.
      if (hasDotSegment(req.url ?? '')) {
        const body = JSON.stringify({ error: errorBody(400, DOT_SEGMENT_MESSAGE, { code: 'invalid_path' }) })
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        res.end(body)
        return
      }
      if (draining) {
        // A kept-alive connection's next request, after the listener closed: its client retries elsewhere.
        res.shouldKeepAlive = false
        res.writeHead(503, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(DRAINING_BODY),
          'retry-after': '1',
          connection: 'close',
        })
        res.end(DRAINING_BODY)
        return
      }
      active++
      res.once('close', () => {
        active--
        if (active === 0) idle?.()
      })
      if (lane === undefined) {
        void listener(req, res)
        return
      }
      lane(req, res, (body) => {
        if (body !== undefined) {
          const read = req as IncomingMessage & ReadByLane
          read.rawBody = body.bytes
          read[PARSED] = body.parsed
        }
        void listener(req, res)
      })
    },
  )
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => refuseRaw(err, socket))
  // Node answers an `Expect` other than 100-continue with an empty 417; this says what to do instead.
  server.on('checkExpectation', (req, res) => {
    const body = JSON.stringify({
      error: errorBody(
        417,
        `Expect: ${String(req.headers.expect).slice(0, 100)} is not supported; send the request without it (or with Expect: 100-continue)`,
        { code: 'expectation_failed', type: 'invalid_request_error' },
      ),
    })
    res.writeHead(417, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    })
    res.end(body)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      const address = server.address()
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : options.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            // Keep-alive connections would hold close() open until clients hang up.
            server.closeAllConnections()
          }),
        drain: async (graceMs) => {
          draining = true
          const closed = new Promise<void>((done) => server.close(() => done()))
          server.closeIdleConnections()
          if (active > 0) {
            let timer: ReturnType<typeof setTimeout> | undefined
            await Promise.race([
              new Promise<void>((done) => (idle = done)),
              new Promise<void>((done) => (timer = setTimeout(done, graceMs))),
            ])
            clearTimeout(timer)
          }
          const cut = active
          server.closeAllConnections()
          await closed
          return { cut }
        },
      })
    })
  })
}

function jsonResponse(status: number, code: string, message: string): Response {
  return Response.json(
    { error: errorBody(status, message, { code, type: 'invalid_request_error' }) },
    { status },
  )
}

/** Node's parser refused the request: the status Node would send, with a body that says why. */
function refuseRaw(err: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  // A reset needs no answer; one already being written must not get a second status line in its middle.
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy()
    return
  }
  const [status, code, message] = rawRefusal(err.code ?? '')
  const body = JSON.stringify({ error: errorBody(status, message, { code, type: 'invalid_request_error' }) })
  socket.end(
    `HTTP/1.1 ${String(status)} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\nconnection: close\r\n\r\n${body}`,
  )
}

function rawRefusal(code: string): [number, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'headers_too_large', 'the request headers are larger than the server accepts (16 KiB)']
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout', 'the request did not arrive in time; send it whole, without pauses']
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return [
        400,
        'invalid_framing',
        'the request has both Content-Length and Transfer-Encoding, or a Transfer-Encoding other than chunked last; send one of them (request smuggling guard)',
      ]
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [400, 'invalid_framing', 'the chunked request body is malformed']
    default:
      return [400, 'bad_request', `the request is not valid HTTP/1.1 (${code.slice(0, 40) || 'parse error'})`]
  }
}
