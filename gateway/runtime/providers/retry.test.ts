import type { IncomingHttpHeaders, OutgoingHttpHeaders, Server } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../test/fakes/http.ts'
import { nodeFetch } from '../../fetch-node.ts'
import { ProviderError } from '../provider.ts'
import { fetchWithRetries, retryDelayMs } from './retry.ts'

/** What the upstream does with one request: answer, or hold it and never answer. */
type Step =
  { readonly status: number; readonly headers?: OutgoingHttpHeaders; readonly body?: string } | 'hang'

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A real upstream whose answers are scripted, one per request, in order; unscripted requests get a 599. */
let server: Server
let url: string
const script: Step[] = []
const received: Received[] = []
let onRequest: (() => void) | undefined

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      })
      const step = script.shift() ?? { status: 599, body: 'unscripted request' }
      onRequest?.()
      if (step === 'hang') return
      res.writeHead(step.status, { 'content-type': 'text/plain', ...step.headers })
      res.end(step.body ?? `attempt ${String(received.length)}`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/v1/chat/completions`
})

afterEach(() => {
  script.length = 0
  received.length = 0
  onRequest = undefined
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

/** Resolves when the server has received its `n`th request (counting from the start of the test). */
function requestArrived(n: number): Promise<void> {
  return new Promise((resolve) => {
    onRequest = () => {
      if (received.length >= n) resolve()
    }
  })
}

const INIT: RequestInit = {
  method: 'POST',
  body: '{"model":"gpt-4o","messages":[{"role":"user","content":"héllo"}]}',
  headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test', 'x-custom': 'c1' },
}

function options(overrides: Partial<{ signal: AbortSignal; timeoutMs: number; maxRetries: number }> = {}) {
  return { signal: new AbortController().signal, timeoutMs: 5_000, maxRetries: 2, ...overrides }
}

const TRANSPORTS = [
  ['the global fetch', fetch],
  ['nodeFetch', nodeFetch],
] as const

describe.each(TRANSPORTS)('fetchWithRetries over %s', (_name, send) => {
  it('returns a first-time success with its body readable', async () => {
    script.push({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"id":"ok"}' })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ id: 'ok' })
    expect(received).toHaveLength(1)
    expect(received[0]?.method).toBe('POST')
    expect(received[0]?.url).toBe('/v1/chat/completions')
  })

  it('retries a 500 and returns the 200 that follows', async () => {
    script.push({ status: 500, body: 'boom' }, { status: 200, body: 'fine' })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('fine')
    expect(received).toHaveLength(2)
  })

  it.each([
    [429, { 'retry-after-ms': '20' }],
    [503, { 'retry-after': '0' }],
    [408, { 'retry-after-ms': '1' }],
    [409, { 'retry-after-ms': '1' }],
    [529, { 'retry-after-ms': '1' }],
  ])('retries a %i (%o) and returns the 200 that follows', async (status, headers) => {
    script.push({ status, headers, body: 'not now' }, { status: 200, body: 'fine' })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('fine')
    expect(received).toHaveLength(2)
  })

  it('returns a 500 at once when the upstream says x-should-retry: false', async () => {
    script.push({ status: 500, headers: { 'x-should-retry': 'false' }, body: 'do not retry' })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('do not retry')
    expect(received).toHaveLength(1)
  })

  it('retries a 400 when the upstream says x-should-retry: true', async () => {
    script.push(
      { status: 400, headers: { 'x-should-retry': 'true', 'retry-after-ms': '1' }, body: 'try again' },
      { status: 200, body: 'fine' },
    )
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('fine')
    expect(received).toHaveLength(2)
  })

  it.each([400, 401, 403, 404, 422])('returns a %i as it is, without retrying', async (status) => {
    script.push({
      status,
      headers: { 'content-type': 'application/json' },
      body: `{"error":${String(status)}}`,
    })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(status)
    expect(await res.json()).toEqual({ error: status })
    expect(received).toHaveLength(1)
  })

  it('makes maxRetries + 1 attempts and returns the last 500', async () => {
    for (let i = 0; i < 3; i++) script.push({ status: 500, headers: { 'retry-after-ms': '1' } })
    const res = await fetchWithRetries(send, url, INIT, options({ maxRetries: 2 }))
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('attempt 3')
    expect(received).toHaveLength(3)
  })

  it('makes one attempt with maxRetries 0', async () => {
    script.push({ status: 503, headers: { 'retry-after-ms': '1' } }, { status: 200 })
    const res = await fetchWithRetries(send, url, INIT, options({ maxRetries: 0 }))
    expect(res.status).toBe(503)
    expect(received).toHaveLength(1)
  })

  it('resends the same body and headers on every attempt', async () => {
    script.push({ status: 502, headers: { 'retry-after-ms': '1' } }, { status: 200 })
    const res = await fetchWithRetries(send, url, INIT, options())
    expect(res.status).toBe(200)
    expect(received).toHaveLength(2)
    const [first, second] = received
    expect(first?.body).toBe(INIT.body)
    expect(second?.body).toBe(first?.body)
    expect(first?.headers.authorization).toBe('Bearer sk-test')
    expect(first?.headers['x-custom']).toBe('c1')
    expect(first?.headers['content-type']).toBe('application/json')
    expect(first?.headers['content-length']).toBe(String(Buffer.byteLength(INIT.body as string)))
    expect(second?.headers).toEqual(first?.headers)
  })

  it('resends a Uint8Array body intact', async () => {
    const body = new TextEncoder().encode('{"bytes":"日本"}')
    script.push({ status: 500, headers: { 'retry-after-ms': '1' } }, { status: 200 })
    await fetchWithRetries(send, url, { method: 'POST', body }, options())
    expect(received.map((r) => r.body)).toEqual(['{"bytes":"日本"}', '{"bytes":"日本"}'])
  })

  it('throws a ProviderError timeout when every attempt outlasts timeoutMs', async () => {
    script.push('hang', 'hang')
    const err: unknown = await fetchWithRetries(
      send,
      url,
      INIT,
      options({ timeoutMs: 100, maxRetries: 1 }),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProviderError)
    expect((err as ProviderError).code).toBe('timeout')
    expect((err as ProviderError).status).toBeUndefined()
    expect((err as ProviderError).message).toBe('the model did not answer within 100 ms')
    expect(received).toHaveLength(2)
  })

  it('retries an attempt that timed out and returns the answer of the next', async () => {
    script.push('hang', { status: 200, body: 'second time lucky' })
    const res = await fetchWithRetries(send, url, INIT, options({ timeoutMs: 200, maxRetries: 1 }))
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('second time lucky')
    expect(received).toHaveLength(2)
  })

  it('rejects promptly with the abort reason when the caller aborts during the wait between retries', async () => {
    script.push({ status: 429, headers: { 'retry-after-ms': '5000' } }, { status: 200 })
    const controller = new AbortController()
    const reason = new Error('client went away')
    let answered: () => void = () => undefined
    const firstAnswer = new Promise<void>((resolve) => {
      answered = resolve
    })
    const watching = async (input: string, init: RequestInit) => {
      const res = await send(input, init)
      answered()
      return res
    }
    const started = performance.now()
    const pending = fetchWithRetries(watching, url, INIT, options({ signal: controller.signal }))
    // The 429 is in the caller's hands; a turn of the event loop later the loop is waiting to retry.
    await firstAnswer
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
    // Well under the 5 s the retry-after asked for.
    expect(performance.now() - started).toBeLessThan(4_000)
    expect(received).toHaveLength(1)
  })

  it('rejects with the abort reason when the caller aborts during an attempt', async () => {
    script.push('hang')
    const controller = new AbortController()
    const reason = new Error('client went away')
    const arrived = requestArrived(1)
    const pending = fetchWithRetries(
      send,
      url,
      INIT,
      options({ signal: controller.signal, timeoutMs: 10_000 }),
    )
    await arrived
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
    expect(received).toHaveLength(1)
  })

  it('turns a string abort reason into an AbortError', async () => {
    script.push('hang')
    const controller = new AbortController()
    const arrived = requestArrived(1)
    const pending = fetchWithRetries(
      send,
      url,
      INIT,
      options({ signal: controller.signal, timeoutMs: 10_000 }),
    )
    await arrived
    controller.abort('shutting down')
    const err: unknown = await pending.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DOMException)
    expect((err as DOMException).name).toBe('AbortError')
    expect((err as DOMException).message).toBe('shutting down')
  })

  it('rejects at once, sending nothing, when the caller’s signal is already aborted', async () => {
    script.push('hang')
    const controller = new AbortController()
    const reason = new Error('already gone')
    controller.abort(reason)
    await expect(
      fetchWithRetries(send, url, INIT, options({ signal: controller.signal, timeoutMs: 2_000 })),
    ).rejects.toBe(reason)
    expect(received).toHaveLength(0)
  })

  it('rethrows the connection error after maxRetries + 1 attempts', async () => {
    const port = await freePort()
    let attempts = 0
    const counting = (input: string, init: RequestInit) => {
      attempts++
      return send(input, init)
    }
    const err: unknown = await fetchWithRetries(
      counting,
      `http://127.0.0.1:${String(port)}/v1/chat/completions`,
      INIT,
      options({ maxRetries: 1 }),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect((err as TypeError).message).toBe('fetch failed')
    expect((err as TypeError).cause).toMatchObject({ code: 'ECONNREFUSED' })
    expect(attempts).toBe(2)
  })
})

describe('retryDelayMs', () => {
  const headers = (init: Record<string, string>) => new Headers(init)

  function expectBackoff(ms: number, retry: number) {
    const full = Math.min(500 * 2 ** retry, 8_000)
    expect(ms).toBeGreaterThanOrEqual(full * 0.75)
    expect(ms).toBeLessThanOrEqual(full)
  }

  it('honours retry-after-ms', () => {
    expect(retryDelayMs(headers({ 'retry-after-ms': '250' }), 0)).toBe(250)
    expect(retryDelayMs(headers({ 'retry-after-ms': '0' }), 3)).toBe(0)
    expect(retryDelayMs(headers({ 'retry-after-ms': '12.5' }), 0)).toBe(12.5)
  })

  it('prefers retry-after-ms to retry-after', () => {
    expect(retryDelayMs(headers({ 'retry-after-ms': '100', 'retry-after': '3' }), 0)).toBe(100)
  })

  it('falls back to retry-after when retry-after-ms is not a number', () => {
    expect(retryDelayMs(headers({ 'retry-after-ms': 'soon', 'retry-after': '2' }), 0)).toBe(2_000)
  })

  it('honours retry-after in seconds', () => {
    expect(retryDelayMs(headers({ 'retry-after': '3' }), 0)).toBe(3_000)
    expect(retryDelayMs(headers({ 'retry-after': '1.5' }), 0)).toBe(1_500)
    expect(retryDelayMs(headers({ 'retry-after': '0' }), 4)).toBe(0)
  })

  it('honours retry-after as an HTTP date', () => {
    // HTTP dates have whole seconds: 2 s ahead is between 1 and 2 s away.
    const date = new Date(Date.now() + 2_000).toUTCString()
    const ms = retryDelayMs(headers({ 'retry-after': date }), 0)
    expect(ms).toBeGreaterThanOrEqual(1_000)
    expect(ms).toBeLessThanOrEqual(2_100)
  })

  it('backs off for an HTTP date in the past or a value that is not a date', () => {
    expectBackoff(retryDelayMs(headers({ 'retry-after': new Date(Date.now() - 10_000).toUTCString() }), 0), 0)
    expectBackoff(retryDelayMs(headers({ 'retry-after': 'whenever' }), 1), 1)
    expectBackoff(retryDelayMs(headers({ 'retry-after-ms': '-5' }), 0), 0)
  })

  it('ignores a wait of a minute or more in favour of backoff', () => {
    expect(retryDelayMs(headers({ 'retry-after-ms': '59999' }), 0)).toBe(59_999)
    expectBackoff(retryDelayMs(headers({ 'retry-after-ms': '60000' }), 0), 0)
    expectBackoff(retryDelayMs(headers({ 'retry-after': '60' }), 1), 1)
    expectBackoff(retryDelayMs(headers({ 'retry-after': '3600' }), 2), 2)
    expectBackoff(
      retryDelayMs(headers({ 'retry-after': new Date(Date.now() + 120_000).toUTCString() }), 0),
      0,
    )
  })

  it('backs off 0.5 s doubling per retry, minus up to a quarter of jitter', () => {
    for (let i = 0; i < 200; i++) {
      const first = retryDelayMs(undefined, 0)
      expect(first).toBeGreaterThanOrEqual(375)
      expect(first).toBeLessThanOrEqual(500)
      const second = retryDelayMs(new Headers(), 1)
      expect(second).toBeGreaterThanOrEqual(750)
      expect(second).toBeLessThanOrEqual(1_000)
      expectBackoff(retryDelayMs(undefined, 3), 3)
    }
  })

  it('caps the backoff at 8 s', () => {
    for (const retry of [4, 5, 10, 50]) {
      for (let i = 0; i < 50; i++) {
        const ms = retryDelayMs(undefined, retry)
        expect(ms).toBeGreaterThanOrEqual(6_000)
        expect(ms).toBeLessThanOrEqual(8_000)
      }
    }
  })

  it('jitters: the waits it picks are not all the same', () => {
    const waits = new Set(Array.from({ length: 20 }, () => retryDelayMs(undefined, 0)))
    expect(waits.size).toBeGreaterThan(1)
  })
})
