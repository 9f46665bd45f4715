/**
 * HttpMemory against a node:http server that implements ARK's memory API (ark-broker's routes, and
 * ark-cluster-memory's older answer shape): it stands in for ARK's memory service, which cannot run here.
 * Every test runs with the global fetch and with the gateway's node:http fetch.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FakeMemoryService } from '../../../test/fakes/ark-memory.ts'
import { freePort, sendJson } from '../../../test/fakes/http.ts'
import { nodeFetch } from '../../fetch-node.ts'
import type { ChatMessage } from '../messages.ts'
import type { Fetch } from '../provider.ts'
import type { HttpMemoryOptions } from './http.ts'
import { HttpMemory } from './http.ts'
import { InvalidConversationError, MemoryUnavailableError } from './memory.ts'

const CANARY = 'canary-secret-7f3a9c'
const PASSWORD = 'pw-secret-b41d'
const live = new AbortController().signal
const user = (content: string): ChatMessage => ({ role: 'user', content })
const answer = (content: string): ChatMessage => ({ role: 'assistant', content })

const service = new FakeMemoryService()
const opened: HttpMemory[] = []

beforeAll(() => service.start())
afterEach(async () => {
  service.reset()
  await Promise.all(opened.splice(0).map((m) => m.close()))
})
afterAll(async () => {
  service.server.closeAllConnections()
  await new Promise((r) => service.server.close(r))
})

/** A MemoryUnavailableError that names the memory and gives away no secret and no address. */
async function expectUnavailable(p: Promise<unknown>, reason: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(MemoryUnavailableError)
  const message = (err as Error).message
  expect(message).toMatch(/^memory ns\/chat is unavailable: /)
  expect(message).toMatch(reason)
  for (const secret of [CANARY, PASSWORD, '127.0.0.1', 'token=']) expect(message).not.toContain(secret)
}

describe.each([
  ['global fetch', fetch],
  ['node:http fetch', nodeFetch],
] as [string, Fetch][])('HttpMemory (%s)', (_, fetchImpl) => {
  function memory(options: Partial<HttpMemoryOptions> = {}): HttpMemory {
    const m = new HttpMemory({
      name: 'ns/chat',
      address: service.url,
      headers: { 'x-api-key': CANARY },
      fetch: fetchImpl,
      ...options,
    })
    opened.push(m)
    return m
  }

  it('stores an exchange with POST /messages and reads it back with GET /messages', async () => {
    const m = memory()
    await m.append('conv-1', [user('hi'), answer('hello')], live, 'query-1')
    await m.append('conv-1', [user('again')], live, 'query-2')
    await m.append('conv-2', [user('elsewhere')], live)
    expect(await m.load('conv-1', live)).toEqual([user('hi'), answer('hello'), user('again')])

    const post = service.seen[0]!
    expect(post.method).toBe('POST')
    expect(post.url).toBe('/messages')
    expect(JSON.parse(post.body)).toEqual({
      conversation_id: 'conv-1',
      query_id: 'query-1',
      messages: [user('hi'), answer('hello')],
    })
    expect(post.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'ark-memory-client/1.0',
      'x-api-key': CANARY,
    })
    // Without a query id one is made up (ARK's service requires one).
    expect((JSON.parse(service.seen[2]!.body) as { query_id: string }).query_id).toMatch(/^[0-9a-f-]{36}$/)
    const get = service.seen[3]!
    expect(get.method).toBe('GET')
    expect(get.url).toBe('/messages?conversation_id=conv-1&limit=1000')
    expect(get.headers['x-api-key']).toBe(CANARY)
  })

  it('escapes the conversation id in the query string', async () => {
    const m = memory()
    await m.append('a&b=c d/é', [user('x')], live)
    expect(await m.load('a&b=c d/é', live)).toEqual([user('x')])
    expect(service.seen[1]!.url).toBe('/messages?conversation_id=a%26b%3Dc+d%2F%C3%A9&limit=1000')
  })

  it('sends ttl_seconds when the memory has a TTL', async () => {
    const m = memory({ bounds: { maxEntries: 0, ttlSeconds: 3600 } })
    await m.append('c', [user('x')], live)
    expect(JSON.parse(service.seen[0]!.body)).toMatchObject({ ttl_seconds: 3600 })
  })

  it('follows nextCursor across pages, and keeps the newest maxEntries', async () => {
    for (let i = 1; i <= 10; i++) service.store('long', user(String(i)))
    service.store('other', user('not mine'))
    service.pageCap = 3
    expect(await memory().load('long', live)).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => user(String(i))),
    )
    // Each page continues after the sequence number of the last record of the one before.
    const seq = (i: number) => String(service.records[i - 1]!.sequence)
    expect(service.seen.map((s) => new URL(s.url, 'http://x').searchParams.get('cursor'))).toEqual([
      null,
      seq(3),
      seq(6),
      seq(9),
    ])
    expect(await memory({ bounds: { maxEntries: 4, ttlSeconds: 0 } }).load('long', live)).toEqual(
      [7, 8, 9, 10].map((i) => user(String(i))),
    )
  })

  it('reads ark-cluster-memory’s answer shape ({messages}) too', async () => {
    service.legacy = true
    service.store('c', user('q'))
    service.store('c', answer('a'))
    expect(await memory().load('c', live)).toEqual([user('q'), answer('a')])
  })

  it('skips records that are no message, and reads A2A and JSON-text messages', async () => {
    service.store('c', user('first'))
    service.store('c', { role: 'tool', content: 'no tool_call_id' })
    service.store('c', 'not json {')
    service.store('c', JSON.stringify(answer('as text')))
    service.store('c', { role: 'agent', parts: [{ kind: 'text', text: 'a2a' }] })
    service.store('c', null)
    expect(await memory().load('c', live)).toEqual([user('first'), answer('as text'), answer('a2a')])
  })

  it('newConversation asks POST /conversations for an id', async () => {
    const id = await memory().newConversation(live)
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(service.seen[0]).toMatchObject({ method: 'POST', url: '/conversations' })
    service.override = (_req, res) => sendJson(res, 201, { conversation_id: 'bad\nid' })
    await expectUnavailable(
      memory().newConversation(live),
      /POST \/conversations answered no usable conversation_id/,
    )
  })

  it('a 500 is MemoryUnavailableError naming the call, without the body it answered', async () => {
    service.override = (_req, res) => sendJson(res, 500, { error: `boom ${CANARY}` })
    await expectUnavailable(memory().load('c', live), /GET \/messages answered HTTP 500$/)
    await expectUnavailable(memory().append('c', [user('x')], live), /POST \/messages answered HTTP 500$/)
  })

  it('a 400 from the service (a body it refused) is MemoryUnavailableError too', async () => {
    service.override = (_req, res) => sendJson(res, 400, { error: 'conversation_id is required' })
    await expectUnavailable(memory().append('c', [user('x')], live), /answered HTTP 400/)
  })

  it('invalid JSON, or JSON of the wrong shape', async () => {
    service.override = (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"items": [')
    await expectUnavailable(memory().load('c', live), /GET \/messages answered a body that is not JSON/)
    service.override = (_req, res) => sendJson(res, 200, { items: 'nope' })
    await expectUnavailable(memory().load('c', live), /answered no list of items/)
    service.override = (_req, res) => sendJson(res, 200, [1, 2])
    await expectUnavailable(memory().load('c', live), /not an object/)
    service.override = (_req, res) => sendJson(res, 200, { items: [], hasMore: true })
    await expectUnavailable(memory().load('c', live), /hasMore without a usable nextCursor/)
  })

  it('a cursor that does not advance ends the load instead of looping', async () => {
    service.override = (_req, res) => sendJson(res, 200, { items: [], hasMore: true, nextCursor: 5 })
    await expectUnavailable(memory().load('c', live), /nextCursor that does not advance/)
    expect(service.seen).toHaveLength(2)
  })

  it('stops after maxPages', async () => {
    for (let i = 1; i <= 10; i++) service.store('c', user(String(i)))
    service.pageCap = 2
    await expectUnavailable(memory({ maxPages: 3 }).load('c', live), /more than 3 pages/)
    expect(service.seen).toHaveLength(3)
  })

  it('an oversized body, declared or streamed, is refused', async () => {
    const big = JSON.stringify({ items: [{ message: user('x'.repeat(5000)) }] })
    service.override = (_req, res) =>
      res.writeHead(200, { 'content-length': Buffer.byteLength(big) }).end(big)
    await expectUnavailable(memory({ maxResponseBytes: 1024 }).load('c', live), /more than 1024 bytes/)
    // Chunked, no length: counted as it arrives.
    service.override = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      for (let i = 0; i < 10; i++) res.write(big.slice(i * 600, (i + 1) * 600))
      res.end()
    }
    await expectUnavailable(memory({ maxResponseBytes: 1024 }).load('c', live), /more than 1024 bytes/)
    // Just under the bound is fine.
    service.override = undefined
    service.store('c', user('y'.repeat(500)))
    expect(await memory({ maxResponseBytes: 1024 }).load('c', live)).toEqual([user('y'.repeat(500))])
  })

  it('a redirect is refused, not followed (it would take the headers elsewhere)', async () => {
    service.override = (req, res) => {
      if (req.url?.startsWith('/elsewhere') === true) sendJson(res, 200, { items: [] })
      else res.writeHead(302, { location: `${service.url}/elsewhere?token=${CANARY}` }).end()
    }
    await expectUnavailable(memory().load('c', live), /redirect/)
    expect(service.seen.map((s) => s.url)).not.toContainEqual(expect.stringContaining('/elsewhere'))
  })

  it('a service that does not answer times out', async () => {
    service.override = () => {} // never answers
    await expectUnavailable(
      memory({ timeoutMs: 200 }).load('c', live),
      /GET \/messages got no answer within 200 ms/,
    )
  })

  it('a body that stalls half-way times out too', async () => {
    service.override = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"items": [')
    }
    await expectUnavailable(memory({ timeoutMs: 200 }).load('c', live), /no answer within 200 ms/)
  })

  it('a service that is not there', async () => {
    const m = memory({ address: `http://127.0.0.1:${String(await freePort())}` })
    await expectUnavailable(m.load('c', live), /GET \/messages failed: ECONNREFUSED/)
  })

  it('the caller going away aborts the call with its reason, not a memory error', async () => {
    service.override = () => {}
    const caller = new AbortController()
    const load = memory().load('c', caller.signal)
    await expect.poll(() => service.seen.length).toBe(1)
    caller.abort(new Error('client went away'))
    await expect(load).rejects.toThrow('client went away')
    await expect(memory().load('c', AbortSignal.abort())).rejects.toThrow(/abort/i)
  })

  it('credentials in the address become Basic auth, and appear in no error', async () => {
    const address = service.url.replace('http://', `http://ark:${PASSWORD}@`) + '/'
    await memory({ address, headers: {} }).append('c', [user('x')], live)
    expect(service.seen[0]!.headers.authorization).toBe(`Basic ${btoa(`ark:${PASSWORD}`)}`)
    expect(service.seen[0]!.url).toBe('/messages')
    service.override = (_req, res) => sendJson(res, 503, {})
    await expectUnavailable(memory({ address }).load('c', live), /HTTP 503/)
  })

  it('a base path in the address is kept', async () => {
    service.override = (_req, res) => sendJson(res, 200, { items: [] })
    await memory({ address: `${service.url}/memory/v1/` }).load('c', live)
    expect(service.seen[0]!.url).toBe('/memory/v1/messages?conversation_id=c&limit=1000')
  })

  it('refuses invalid conversation ids before calling the service', async () => {
    await expect(memory().load('', live)).rejects.toThrow(InvalidConversationError)
    await expect(memory().append('a\u0007', [user('x')], live)).rejects.toThrow(InvalidConversationError)
    expect(service.seen).toHaveLength(0)
  })
})

function thrown(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('it did not throw')
}

describe('HttpMemory configuration', () => {
  const make = (options: Partial<HttpMemoryOptions>) => () =>
    new HttpMemory({ name: 'ns/chat', address: 'http://memory.example', fetch, ...options })

  it('refuses an address that is no http(s) URL, or carries a query, without repeating it', () => {
    expect(make({ address: 'not a url' })).toThrow(/memory ns\/chat is unavailable: its address is not a URL/)
    expect(make({ address: 'ftp://host/' })).toThrow(/not an http\(s\) URL/)
    const withQuery = thrown(make({ address: `http://host/?token=${CANARY}` }))
    expect(withQuery).toMatch(/query or fragment/)
    expect(withQuery).not.toContain(CANARY)
  })

  it('an invalid header value is named by its header, never quoted', () => {
    const bad = make({ headers: { authorization: `Bearer ${CANARY}\r\nx-injected: 1` } })
    expect(bad).toThrow(MemoryUnavailableError)
    expect(thrown(bad)).toMatch(/header authorization of the Memory has an invalid name or value/)
    expect(thrown(bad)).not.toContain(CANARY)
  })
})
