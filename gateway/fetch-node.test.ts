import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from '../test/fakes/http.ts'
import { MAX_BUFFERED_BYTES, nodeFetch } from './fetch-node.ts'

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
}

interface TestServer {
  url: string
  readonly received: Received[]
  /** TCP connections the server accepted. */
  connections: number
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>

const servers: Server[] = []

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

/** A real HTTP server on 127.0.0.1; each request is recorded once its body has arrived, then handled. */
async function serve(handler: Handler): Promise<TestServer> {
  const state: TestServer = { url: '', received: [], connections: 0 }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      state.received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      void Promise.resolve(handler(req, res, body)).catch((err: unknown) => {
        res.destroy(err instanceof Error ? err : new Error(String(err)))
      })
    })
  })
  server.on('connection', () => {
    state.connections++
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
  return state
}

/** Echoes what it received as JSON. */
function echo(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ method: req.method, url: req.url, body: body.toString('utf8') }))
}

interface Deferred<T> {
  readonly promise: Promise<T>
  resolve(value: T): void
}

function deferred<T = undefined>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

const JSON_BODY = { model: 'gpt-4o', choices: [{ index: 0, text: 'hi' }] }

/** A 201 with a JSON body and repeated headers. */
const jsonAnswer: Handler = (_req, res) => {
  res.setHeader('content-type', 'application/json')
  res.setHeader('x-multi', ['a', 'b'])
  res.setHeader('set-cookie', ['a=1', 'b=2'])
  res.writeHead(201, 'Made It')
  res.end(JSON.stringify(JSON_BODY))
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Reads from `reader` until the text read so far contains `marker`. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, marker: string): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  while (!text.includes(marker)) {
    const { value, done } = await reader.read()
    if (done)
      throw new Error(`the stream ended before ${JSON.stringify(marker)}; read ${JSON.stringify(text)}`)
    text += decoder.decode(value, { stream: true })
  }
  return text
}

describe('nodeFetch: requests', () => {
  it('sends a POST with a string body: method, path and query, bytes and content-length', async () => {
    const server = await serve(echo)
    const res = await nodeFetch(`${server.url}/v1/chat?stream=false&x=1`, {
      method: 'post',
      body: '{"a":1}',
      headers: { 'Content-Type': 'application/json' },
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ method: 'POST', url: '/v1/chat?stream=false&x=1', body: '{"a":1}' })
    const [received] = server.received
    expect(received?.method).toBe('POST')
    expect(received?.url).toBe('/v1/chat?stream=false&x=1')
    expect(received?.body.toString('utf8')).toBe('{"a":1}')
    expect(received?.headers['content-length']).toBe('7')
    expect(received?.headers['content-type']).toBe('application/json')
  })

  it('sends a Uint8Array body as its bytes, a view into a larger buffer included', async () => {
    const server = await serve(echo)
    const bytes = new Uint8Array([0, 1, 2, 3, 255, 254, 9]).subarray(1, 6)
    await nodeFetch(new URL(`${server.url}/bytes`), { method: 'PUT', body: bytes })
    const [received] = server.received
    expect(received?.method).toBe('PUT')
    expect([...(received?.body ?? [])]).toEqual([1, 2, 3, 255, 254])
    expect(received?.headers['content-length']).toBe('5')
  })

  it.each([
    ['a plain record', { 'X-Api-Key': 'k1', Authorization: 'Bearer t' }],
    ['a Headers object', new Headers({ 'X-Api-Key': 'k1', Authorization: 'Bearer t' })],
    [
      'an array of pairs',
      [
        ['X-Api-Key', 'k1'],
        ['Authorization', 'Bearer t'],
      ],
    ],
  ] satisfies [string, RequestInit['headers']][])(
    'sends headers given as %s, names lowercased',
    async (_kind, headers) => {
      const server = await serve(echo)
      await nodeFetch(`${server.url}/h`, { method: 'POST', body: 'x', headers })
      const [received] = server.received
      expect(received?.headers['x-api-key']).toBe('k1')
      expect(received?.headers.authorization).toBe('Bearer t')
      expect(received?.headers['content-length']).toBe('1')
    },
  )

  it('sets content-length from the body, whatever the caller said', async () => {
    const server = await serve(echo)
    await nodeFetch(`${server.url}/`, { method: 'POST', body: 'héllo', headers: { 'Content-Length': '2' } })
    expect(server.received[0]?.headers['content-length']).toBe('6')
    expect(server.received[0]?.body.toString('utf8')).toBe('héllo')
  })
})

describe('nodeFetch: a buffered response', () => {
  it('has the status, status text, ok and every header, repeated ones included', async () => {
    const server = await serve(jsonAnswer)
    const res = await nodeFetch(`${server.url}/`)
    expect(res).toBeInstanceOf(Response)
    expect(res.status).toBe(201)
    expect(res.statusText).toBe('Made It')
    expect(res.ok).toBe(true)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('x-multi')).toBe('a, b')
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2'])
    expect(res.bodyUsed).toBe(false)
  })

  it('is not ok for a 404', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('no such model')
    })
    const res = await nodeFetch(`${server.url}/missing`)
    expect(res.status).toBe(404)
    expect(res.statusText).toBe('Not Found')
    expect(res.ok).toBe(false)
    expect(await res.text()).toBe('no such model')
  })

  it('reads as json()', async () => {
    const server = await serve(jsonAnswer)
    expect(await (await nodeFetch(server.url)).json()).toEqual(JSON_BODY)
  })

  it('reads as text()', async () => {
    const server = await serve(jsonAnswer)
    expect(await (await nodeFetch(server.url)).text()).toBe(JSON.stringify(JSON_BODY))
  })

  it('reads as arrayBuffer(), exactly the body bytes', async () => {
    const server = await serve(jsonAnswer)
    const buffer = await (await nodeFetch(server.url)).arrayBuffer()
    expect(buffer).toBeInstanceOf(ArrayBuffer)
    expect(buffer.byteLength).toBe(Buffer.byteLength(JSON.stringify(JSON_BODY)))
    expect(Buffer.from(buffer).toString('utf8')).toBe(JSON.stringify(JSON_BODY))
  })

  it('reads as bytes()', async () => {
    const server = await serve(jsonAnswer)
    const bytes = await (await nodeFetch(server.url)).bytes()
    expect(bytes).toBeInstanceOf(Uint8Array)
    expect(new TextDecoder().decode(bytes)).toBe(JSON.stringify(JSON_BODY))
  })

  it('reads as blob(), typed from content-type', async () => {
    const server = await serve(jsonAnswer)
    const blob = await (await nodeFetch(server.url)).blob()
    expect(blob.type).toBe('application/json')
    expect(blob.size).toBe(Buffer.byteLength(JSON.stringify(JSON_BODY)))
    expect(await blob.text()).toBe(JSON.stringify(JSON_BODY))
  })

  it('refuses a second read and reports bodyUsed', async () => {
    const server = await serve(jsonAnswer)
    const res = await nodeFetch(server.url)
    expect(res.bodyUsed).toBe(false)
    expect(await res.text()).toBe(JSON.stringify(JSON_BODY))
    expect(res.bodyUsed).toBe(true)
    await expect(res.text()).rejects.toThrow(TypeError)
    await expect(res.json()).rejects.toThrow(TypeError)
    expect(() => res.clone()).toThrow(TypeError)
  })

  it('clones before reading into an independent copy', async () => {
    const server = await serve(jsonAnswer)
    const res = await nodeFetch(server.url)
    const copy = res.clone()
    expect(copy).toBeInstanceOf(Response)
    expect(copy.status).toBe(201)
    expect(copy.headers.get('x-multi')).toBe('a, b')
    expect(await copy.json()).toEqual(JSON_BODY)
    expect(copy.bodyUsed).toBe(true)
    expect(res.bodyUsed).toBe(false)
    expect(await res.text()).toBe(JSON.stringify(JSON_BODY))
  })

  it('hands out body as a ReadableStream of the bytes, after which the body is used', async () => {
    const server = await serve(jsonAnswer)
    const res = await nodeFetch(server.url)
    const body = res.body
    expect(body).toBeInstanceOf(ReadableStream)
    expect(res.body).toBe(body)
    const reader = body!.getReader()
    const chunks: Uint8Array[] = []
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value as Uint8Array)
    expect(Buffer.concat(chunks).toString('utf8')).toBe(JSON.stringify(JSON_BODY))
    expect(res.bodyUsed).toBe(true)
    // Through an async wrapper: whether text() throws or rejects (see the fetch parity tests below), it fails.
    await expect((async () => res.text())()).rejects.toThrow(TypeError)
  })

  it('lets text() read the body when body was only looked at', async () => {
    const server = await serve(jsonAnswer)
    const res = await nodeFetch(server.url)
    expect(res.body).not.toBeNull()
    expect(await res.text()).toBe(JSON.stringify(JSON_BODY))
  })

  it('round-trips a non-ASCII UTF-8 body', async () => {
    const text = 'héllo ✓ 日本'
    const server = await serve((_req, res, body) => {
      res.setHeader('content-type', 'text/plain; charset=utf-8')
      res.end(body)
    })
    const res = await nodeFetch(server.url, { method: 'POST', body: text })
    expect(server.received[0]?.headers['content-length']).toBe(String(Buffer.byteLength(text)))
    expect(server.received[0]?.body.toString('utf8')).toBe(text)
    expect(await res.text()).toBe(text)
  })

  it('joins a large body that arrives in many chunks, multi-byte characters split across them', async () => {
    const text = '日本語✓é'.repeat(40_000)
    const bytes = Buffer.from(text)
    const server = await serve(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
      // Split inside the three bytes of 日, in pieces the client sees separately.
      for (let i = 0; i < bytes.length; i += 65_537) {
        res.write(bytes.subarray(i, i + 65_537))
        await new Promise((resolve) => setImmediate(resolve))
      }
      res.end()
    })
    const res = await nodeFetch(server.url)
    const received = await res.text()
    expect(received.length).toBe(text.length)
    expect(received === text).toBe(true)
  })
})

describe('nodeFetch: responses without a body', () => {
  it.each([204, 304])('gives a %i a null body', async (status) => {
    const server = await serve((_req, res) => {
      res.writeHead(status, { etag: '"v1"' })
      res.end()
    })
    const res = await nodeFetch(server.url)
    expect(res.status).toBe(status)
    expect(res.headers.get('etag')).toBe('"v1"')
    expect(res.body).toBeNull()
    expect(await res.text()).toBe('')
  })

  it('gives a HEAD response a null body, and the connection stays usable', async () => {
    const server = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' })
      res.end(req.method === 'HEAD' ? undefined : 'hello')
    })
    const head = await nodeFetch(server.url, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe('5')
    expect(head.body).toBeNull()
    const get = await nodeFetch(server.url)
    expect(await get.text()).toBe('hello')
    expect(server.received.map((r) => r.method)).toEqual(['HEAD', 'GET'])
    expect(server.connections).toBe(1)
  })
})

describe('nodeFetch: an event stream', () => {
  it('is handed on as it arrives, before the server has finished', async () => {
    const firstRead = deferred()
    const server = await serve(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: one\n\n')
      // The rest only once the client has read the first event: a buffering client never gets there.
      await firstRead.promise
      res.end('data: two\n\ndata: [DONE]\n\n')
    })
    const res = await nodeFetch(server.url, { method: 'POST', body: '{"stream":true}' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const reader = res.body!.getReader()
    expect(await readUntil(reader, '\n\n')).toBe('data: one\n\n')
    firstRead.resolve(undefined)
    const rest: Uint8Array[] = []
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest.push(r.value as Uint8Array)
    expect(Buffer.concat(rest).toString('utf8')).toBe('data: two\n\ndata: [DONE]\n\n')
  }, 10_000)

  it('leaves the connection usable for the next request once read to the end', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end('data: x\n\n')
      } else echo(req, res, Buffer.alloc(0))
    })
    const sse = await nodeFetch(`${server.url}/sse`)
    expect((await readAll(sse.body!)).toString('utf8')).toBe('data: x\n\n')
    const next = await nodeFetch(`${server.url}/after`)
    expect(await next.json()).toEqual({ method: 'GET', url: '/after', body: '' })
    expect(server.connections).toBe(1)
  })
})

describe('nodeFetch: redirects', () => {
  it('returns a 307 as it is and does not follow it', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/target') {
        res.end('followed')
        return
      }
      res.writeHead(307, { location: '/target' })
      res.end('moved')
    })
    const res = await nodeFetch(`${server.url}/start`, { method: 'POST', body: 'secret payload' })
    expect(res.status).toBe(307)
    expect(res.headers.get('location')).toBe('/target')
    expect(res.redirected).toBe(false)
    expect(await res.text()).toBe('moved')
    expect(server.received.map((r) => r.url)).toEqual(['/start'])
  })
})

describe('nodeFetch: abort', () => {
  it('rejects with the reason of an already aborted signal and sends nothing', async () => {
    const server = await serve(echo)
    const controller = new AbortController()
    const reason = new Error('caller gave up')
    controller.abort(reason)
    await expect(
      nodeFetch(`${server.url}/aborted`, { method: 'POST', body: 'x', signal: controller.signal }),
    ).rejects.toBe(reason)
    await nodeFetch(`${server.url}/after`)
    expect(server.received.map((r) => r.url)).toEqual(['/after'])
  })

  it('rejects with the reason when aborted while the server holds the request, and closes the connection', async () => {
    const arrived = deferred()
    const closed = deferred()
    const server = await serve((_req, res) => {
      res.once('close', () => closed.resolve(undefined))
      arrived.resolve(undefined)
    })
    const controller = new AbortController()
    const reason = new Error('client disconnected')
    const pending = nodeFetch(server.url, { method: 'POST', body: '{}', signal: controller.signal })
    await arrived.promise
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
    await closed.promise
    expect(server.received).toHaveLength(1)
  })

  it('rejects with a TimeoutError for AbortSignal.timeout', async () => {
    const closed = deferred()
    const server = await serve((_req, res) => {
      res.once('close', () => closed.resolve(undefined))
    })
    const started = performance.now()
    const err: unknown = await nodeFetch(server.url, { signal: AbortSignal.timeout(50) }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(DOMException)
    expect((err as DOMException).name).toBe('TimeoutError')
    await closed.promise
    // Well under the 20 s a request that ignored its signal would hang for.
    expect(performance.now() - started).toBeLessThan(5_000)
  })

  it('rejects with the reason when aborted while a buffered body is arriving', async () => {
    const firstPart = deferred()
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
      res.write('{"partial":', () => firstPart.resolve(undefined))
    })
    const controller = new AbortController()
    const reason = new Error('stop')
    const pending = nodeFetch(server.url, { signal: controller.signal })
    await firstPart.promise
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
  })

  it('errors the stream with the reason when aborted during an event stream', async () => {
    const closed = deferred()
    const server = await serve((_req, res) => {
      res.once('close', () => closed.resolve(undefined))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: one\n\n')
    })
    const controller = new AbortController()
    const reason = new Error('client left mid-stream')
    const res = await nodeFetch(server.url, { signal: controller.signal })
    const reader = res.body!.getReader()
    expect(await readUntil(reader, '\n\n')).toBe('data: one\n\n')
    controller.abort(reason)
    await expect(reader.read()).rejects.toBe(reason)
    await closed.promise
  })
})

describe('nodeFetch: network failures', () => {
  it('rejects a refused connection with TypeError("fetch failed") caused by the system error', async () => {
    const port = await freePort()
    const err: unknown = await nodeFetch(`http://127.0.0.1:${String(port)}/`, {
      method: 'POST',
      body: 'x',
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect((err as TypeError).message).toBe('fetch failed')
    expect((err as TypeError).cause).toBeInstanceOf(Error)
    expect((err as TypeError).cause).toMatchObject({ code: 'ECONNREFUSED' })
  })

  it('rejects with TypeError("fetch failed") when the connection drops mid-body', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
      res.write('{"partial":', () => res.destroy())
    })
    const err: unknown = await nodeFetch(server.url).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect((err as TypeError).message).toBe('fetch failed')
    expect((err as TypeError).cause).toBeInstanceOf(Error)
  })
})

describe('nodeFetch: a body read whole has a bound', () => {
  it('refuses a body larger than MAX_BUFFERED_BYTES, and stops reading it', async () => {
    let written = 0
    let stopped = false
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(1024 * 1024, 'x')
      // Would go on for twice the bound if the client kept reading.
      const more = () => {
        while (written < 2 * MAX_BUFFERED_BYTES) {
          written += chunk.length
          if (!res.write(chunk)) {
            res.once('drain', more)
            return
          }
        }
        res.end()
      }
      res.once('close', () => {
        stopped = true
      })
      more()
    })
    const err: unknown = await nodeFetch(server.url).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect(((err as TypeError).cause as Error).message).toBe(
      `the response is larger than ${String(MAX_BUFFERED_BYTES)} bytes`,
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(stopped).toBe(true)
    expect(written).toBeLessThan(2 * MAX_BUFFERED_BYTES)
  })
})

describe('nodeFetch: keep-alive', () => {
  it('reuses one connection for sequential requests', async () => {
    const server = await serve(echo)
    const first = await nodeFetch(`${server.url}/1`, { method: 'POST', body: 'a' })
    expect(await first.json()).toEqual({ method: 'POST', url: '/1', body: 'a' })
    const second = await nodeFetch(`${server.url}/2`, { method: 'POST', body: 'b' })
    expect(await second.json()).toEqual({ method: 'POST', url: '/2', body: 'b' })
    expect(server.received).toHaveLength(2)
    expect(server.connections).toBe(1)
  })
})

describe('nodeFetch: what it hands to the global fetch', () => {
  // The global fetch (undici) marks its requests; node:http sends none of these headers.
  it('does not go through the global fetch for string bodies', async () => {
    const server = await serve(echo)
    await nodeFetch(server.url, { method: 'POST', body: 'x' })
    expect(server.received[0]?.headers['sec-fetch-mode']).toBeUndefined()
  })

  it('sends a ReadableStream body through the global fetch', async () => {
    const server = await serve(echo)
    const encoder = new TextEncoder()
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode('streamed '))
        controller.enqueue(encoder.encode('body'))
        controller.close()
      },
    })
    const res = await nodeFetch(`${server.url}/stream`, { method: 'POST', body, duplex: 'half' })
    expect(await res.json()).toEqual({ method: 'POST', url: '/stream', body: 'streamed body' })
    expect(server.received[0]?.headers['sec-fetch-mode']).toBe('cors')
  })

  it('sends a Request object through the global fetch', async () => {
    const server = await serve(echo)
    const request = new Request(`${server.url}/req?q=1`, {
      method: 'PUT',
      body: 'from a Request',
      headers: { 'X-From': 'request' },
    })
    const res = await nodeFetch(request)
    expect(await res.json()).toEqual({ method: 'PUT', url: '/req?q=1', body: 'from a Request' })
    expect(server.received[0]?.headers['x-from']).toBe('request')
    expect(server.received[0]?.headers['sec-fetch-mode']).toBe('cors')
  })

  it('fetches a URL that is not http(s) with the global fetch', async () => {
    const res = await nodeFetch('data:text/plain,hello%20data')
    expect(await res.text()).toBe('hello data')
  })
})

/**
 * The global fetch's behaviour, asserted of both: nodeFetch stands in for it under the SDKs. Each of these
 * once differed in nodeFetch (found by these tests, then fixed).
 */
describe.each([
  ['the global fetch', fetch],
  ['nodeFetch', nodeFetch],
] as const)('like the global fetch: %s', (_name, send) => {
  it('combines a header given twice in an array of pairs', async () => {
    const server = await serve(echo)
    await send(server.url, {
      headers: [
        ['X-Dup', 'a'],
        ['x-dup', 'b'],
      ],
    })
    expect(server.received[0]?.headers['x-dup']).toBe('a, b')
  })

  it('returns a rejected promise, not a throw, from text() after body was read', async () => {
    const server = await serve(jsonAnswer)
    const res = await send(server.url)
    const reader = res.body!.getReader()
    while (!(await reader.read()).done) {
      // drain
    }
    let pending: Promise<string> | undefined
    expect(() => {
      pending = res.text()
    }).not.toThrow()
    await expect(pending).rejects.toThrow(TypeError)
  })

  it('reports bodyUsed once body has been read to the end with for await', async () => {
    const server = await serve(jsonAnswer)
    const res = await send(server.url)
    expect((await readAll(res.body!)).toString('utf8')).toBe(JSON.stringify(JSON_BODY))
    expect(res.bodyUsed).toBe(true)
  })

  it('still has a body stream after text()', async () => {
    const server = await serve(jsonAnswer)
    const res = await send(server.url)
    await res.text()
    let body: ReadableStream<Uint8Array> | null = null
    expect(() => {
      body = res.body
    }).not.toThrow()
    expect(body).toBeInstanceOf(ReadableStream)
  })

  it('keeps bodyUsed false after getReader() until something is read', async () => {
    const server = await serve(jsonAnswer)
    const res = await send(server.url)
    const reader = res.body!.getReader()
    expect(res.bodyUsed).toBe(false)
    await reader.read()
    expect(res.bodyUsed).toBe(true)
  })
})
