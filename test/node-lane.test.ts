/**
 * The Node lane (gateway/openai/node-lane.ts) answers `model/<name>` calls beside the app. It must answer
 * them exactly as the app does, and hand everything else to the app untouched. One embedded ark, served
 * twice: with the lane, and without it (the app alone, as Deno serves). Every request goes to both and
 * the answers are compared; the lane's own record of what it answered says which requests it took.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startEmbedded } from '../bin/embedded.ts'
import type { Embedded } from '../bin/embedded.ts'
import { KeyRing, serve, silentLogger } from '../gateway/index.ts'
import type { ServeHandle } from '../gateway/index.ts'
import type { RequestRecord } from '../gateway/http/request-record.ts'
import type { FakeReply, FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'

const KEY = 'ark-test-lane-key-1'
const NARROW = 'ark-test-lane-key-2'
const sha = (key: string) => createHash('sha256').update(key).digest('hex')

let upstream: FakeUpstream
let dir: string
let system: Embedded
let withLane: ServeHandle
let appOnly: ServeHandle
const laneAnswered: RequestRecord[] = []

const manifests = (url: string) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: up }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config: { openai: { baseUrl: { value: "${url}" }, apiKey: { value: sk-lane-secret-canary } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: broken }
spec:
  provider: openai
  model: { value: gpt-4o }
  config: { openai: { baseUrl: { value: "${url}" }, apiKey: { valueFrom: { secretKeyRef: { name: missing, key: k } } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: mock }
spec:
  provider: mock
  model: { value: mock }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec:
  prompt: You help.
  modelRef: { name: mock }
`

beforeAll(async () => {
  upstream = await startFakeOpenAI()
  dir = await mkdtemp(join(tmpdir(), 'ark-lane-'))
  await writeFile(join(dir, 'ark.yaml'), manifests(upstream.url))
  const keys = new KeyRing()
  keys.replace([
    { id: 'all', sha256: sha(KEY) },
    { id: 'narrow', sha256: sha(NARROW), scope: { targets: ['agent/*'] } },
  ])
  system = await startEmbedded({
    manifests: dir,
    watch: false,
    log: silentLogger,
    allowedHosts: 'loopback',
    maxBodyBytes: 4096,
    bodyTimeoutMs: 400,
    probeIntervalSeconds: 3600,
    auth: { keys },
  })
  const lane = system.gateway.lane
  if (lane === undefined) throw new Error('the gateway offers no lane')
  withLane = await serve(system.gateway.fetch, {
    host: '127.0.0.1',
    port: 0,
    lane: {
      ...lane,
      record: (r) => {
        laneAnswered.push(r)
        lane.record(r)
      },
    },
  })
  appOnly = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
})

afterAll(async () => {
  await withLane.close()
  await appOnly.close()
  await system.close()
  await upstream.close()
  await rm(dir, { recursive: true, force: true })
})

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const CHAT = { messages: [{ role: 'user', content: 'Say hello.' }] }

interface Sent {
  readonly method?: string
  readonly path?: string
  readonly headers?: Record<string, string>
  /** Headers sent once more each, after the others: a name given twice. */
  readonly twice?: Record<string, string>
  /** Absent: none. A stream: sent chunked, without a Content-Length. */
  readonly body?: string | Uint8Array | { readonly chunked: string }
}

/** One request over node:http, which sends the headers given (fetch would set its own Host). */
function send(server: ServeHandle, sent: Sent): Promise<Answer> {
  const body = sent.body
  const whole = typeof body === 'string' || body instanceof Uint8Array ? body : undefined
  const chunked = typeof body === 'object' && !(body instanceof Uint8Array) ? body.chunked : undefined
  const headers: [string, string][] = [
    ...Object.entries({
      // Given as a list, the headers are all Node sends: Host too.
      host: `127.0.0.1:${String(server.port)}`,
      authorization: `Bearer ${KEY}`,
      'content-type': 'application/json',
      ...sent.headers,
    }),
    ...Object.entries(sent.twice ?? {}),
  ]
  if (whole !== undefined) headers.push(['content-length', String(Buffer.byteLength(whole))])
  if (chunked !== undefined) headers.push(['transfer-encoding', 'chunked'])
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        method: sent.method ?? 'POST',
        path: sent.path ?? '/v1/chat/completions',
        // A flat list of names and values: Node sends a name given twice as it is.
        headers: headers.flat(),
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const answer: Record<string, string> = {}
          for (const [name, value] of Object.entries(res.headers))
            if (name !== 'date' && value !== undefined) answer[name] = String(value)
          resolve({
            status: res.statusCode ?? 0,
            headers: answer,
            body: Buffer.concat(chunks).toString('utf8'),
          })
        })
      },
    )
    req.on('error', reject)
    if (chunked !== undefined) {
      req.write(chunked.slice(0, 10))
      req.end(chunked.slice(10))
    } else req.end(whole)
  })
}

/** The same request to both servers: the answers, and whether the lane answered it. */
async function both(init: Sent) {
  const before = laneAnswered.length
  const lane = await send(withLane, init)
  const byLane = laneAnswered.length > before
  const app = await send(appOnly, init)
  return { lane, app, byLane }
}

/** Upstream answers carry their own ids and times; everything else must match. */
function sameAnswer(lane: Answer, app: Answer): void {
  const strip = (a: Answer) => ({
    ...a,
    headers: { ...a.headers, 'x-request-id': a.headers['x-request-id'] === undefined ? 'none' : 'an id' },
    body: a.body.replace(/"id":"[^"]+"/g, '"id":"*"').replace(/"created":\d+/g, '"created":0'),
  })
  expect(strip(lane)).toEqual(strip(app))
}

describe('the Node lane', () => {
  it('answers a model/ call as the app does, with the secret kept out', async () => {
    const { lane, app, byLane } = await both({ body: JSON.stringify({ model: 'model/up', ...CHAT }) })
    expect(byLane).toBe(true)
    expect(lane.status).toBe(200)
    expect(lane.headers['content-length']).toBe(String(Buffer.byteLength(lane.body)))
    sameAnswer(lane, app)
    // The Model's key reached the upstream, and only the upstream.
    expect(upstream.calls.at(-1)?.headers.authorization).toBe('Bearer sk-lane-secret-canary')
    expect(lane.body).not.toContain('sk-lane-secret-canary')
    const recorded = laneAnswered.at(-1)
    expect(recorded).toMatchObject({ route: '/v1/chat/completions', status: 200, target: 'model/up' })
    expect(recorded?.principal?.id).toBe('all')
  })

  it('answers upstream errors, the caller scope and unavailable Models as the app does', async () => {
    const body = JSON.stringify({ model: 'model/up', ...CHAT })
    const cases: [string, FakeReply | undefined, Sent, number][] = [
      [
        'an upstream 400',
        { status: 400, body: { error: { message: 'bad thing', type: 'x' } } },
        { body },
        400,
      ],
      ['an upstream 401', { status: 401 }, { body }, 401],
      ['a key scoped to agents', undefined, { body, headers: { authorization: `Bearer ${NARROW}` } }, 403],
      ['an unavailable Model', undefined, { body: JSON.stringify({ model: 'model/broken', ...CHAT }) }, 503],
      [
        'messages not a list',
        undefined,
        { body: JSON.stringify({ model: 'model/up', messages: 'hi' }) },
        400,
      ],
    ]
    for (const [what, reply, init, status] of cases) {
      // One scripted reply for each server's call.
      if (reply !== undefined) upstream.next(reply, reply)
      const { lane, app, byLane } = await both(init)
      expect(byLane, what).toBe(true)
      expect(lane.status, what).toBe(status)
      sameAnswer(lane, app)
    }
  })

  it('hands everything else to the app, which answers it as it would', async () => {
    const body = JSON.stringify({ model: 'model/up', ...CHAT })
    const cases: [string, Sent, number | undefined][] = [
      ['an agent', { body: JSON.stringify({ model: 'agent/helper', ...CHAT }) }, 200],
      ['an unknown model', { body: JSON.stringify({ model: 'model/nope', ...CHAT }) }, 404],
      ['a stream', { body: JSON.stringify({ model: 'model/up', stream: true, ...CHAT }) }, 200],
      ['no key', { body, headers: { authorization: '' } }, 401],
      ['a wrong key', { body, headers: { authorization: 'Bearer nope' } }, 401],
      ['a foreign Host', { body, headers: { host: 'evil.example' } }, 403],
      ['not JSON by type', { body, headers: { 'content-type': 'text/plain' } }, 415],
      ['broken JSON', { body: '{"model": "model/up",' }, 400],
      ['not UTF-8', { body: new Uint8Array([0x7b, 0xff, 0x7d]) }, 400],
      ['too large', { body: JSON.stringify({ model: 'model/up', pad: 'x'.repeat(5000), ...CHAT }) }, 413],
      ['a query', { body, path: '/v1/chat/completions?x=1' }, 200],
      // Node keeps the first of these, the app sees them joined: whatever it answers, the lane leaves it.
      ['Host twice', { body, twice: { host: 'evil.example' } }, undefined],
      ['Authorization twice', { body, twice: { authorization: 'Bearer nope' } }, undefined],
      ['Content-Type twice', { body, twice: { 'content-type': 'text/plain' } }, undefined],
      ['GET', { method: 'GET' }, 405],
    ]
    for (const [what, init, status] of cases) {
      const { lane, app, byLane } = await both(init)
      expect(byLane, what).toBe(false)
      if (status !== undefined) expect(lane.status, what).toBe(status)
      if (what !== 'a stream' && what !== 'an agent') sameAnswer(lane, app)
      else expect(lane.body, what).toContain('chat.completion')
    }
  })

  it('counts each request once, whichever answered it', async () => {
    const count = async (pattern: RegExp) => {
      const text = await system.gateway.metrics.text()
      return Number(pattern.exec(text)?.[1] ?? 0)
    }
    const keyOk = /^ark_auth_requests_total\{key="all",result="ok"\} (\d+)$/m
    const laneHttp =
      /^http_server_request_duration_seconds_count\{http_request_method="POST",http_route="\/v1\/chat\/completions",http_response_status_code="200",ark_target="model\/up"\} (\d+)$/m
    const keys0 = await count(keyOk)
    const http0 = await count(laneHttp)
    const answered = laneAnswered.length
    // One the lane answers, one it reads and hands on.
    await send(withLane, { body: JSON.stringify({ model: 'model/up', ...CHAT }) })
    await send(withLane, { body: JSON.stringify({ model: 'agent/helper', ...CHAT }) })
    expect(laneAnswered.length - answered).toBe(1)
    expect((await count(keyOk)) - keys0).toBe(2)
    expect((await count(laneHttp)) - http0).toBe(1)
  })

  it('takes a chunked body to the app, read once', async () => {
    const { lane, app, byLane } = await both({
      body: { chunked: JSON.stringify({ model: 'model/up', ...CHAT }) },
    })
    expect(byLane).toBe(false)
    expect(lane.status).toBe(200)
    sameAnswer(lane, app)
  })

  it('refuses a body that stops coming with the 408 the app gives, and ends the connection', async () => {
    const slow = async (server: ServeHandle) => {
      const socket = connect(server.port, '127.0.0.1')
      const closed = new Promise<boolean>((resolve) => {
        socket.once('close', () => resolve(true))
        setTimeout(() => resolve(false), 3000).unref()
      })
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":`,
      )
      let text = ''
      socket.on('data', (d: Buffer) => (text += d.toString()))
      // The rest of the body never comes: the server ends the connection after its answer (and answers
      // nothing more, such as a second 408 when Node's own request timeout fires).
      const ended = await closed
      socket.destroy()
      return { text, ended }
    }
    const before = laneAnswered.length
    const [lane, app] = await Promise.all([slow(withLane), slow(appOnly)])
    expect(laneAnswered.slice(before).map((r) => r.status)).toEqual([408])
    for (const { text, ended } of [lane, app]) {
      expect(ended).toBe(true)
      expect(text.match(/HTTP\/1.1 /g)).toHaveLength(1)
      expect(text).toMatch(/^HTTP\/1.1 408/)
    }
    const body = (text: string) => text.slice(text.indexOf('\r\n\r\n') + 4)
    expect(body(lane.text)).toBe(body(app.text))
    expect(body(lane.text)).toContain('request_timeout')
  })

  it('answers 499 for a client that leaves, and cancels the upstream call', async () => {
    upstream.next({ hang: true })
    const calls = upstream.calls.length
    const before = laneAnswered.length
    const req = request({
      host: '127.0.0.1',
      port: withLane.port,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    })
    req.on('error', () => undefined)
    req.end(JSON.stringify({ model: 'model/up', ...CHAT }))
    await vi.waitFor(() => expect(upstream.calls.length).toBeGreaterThan(calls), { timeout: 5000 })
    req.destroy()
    await vi.waitFor(() => expect(laneAnswered.length).toBeGreaterThan(before), { timeout: 5000 })
    expect(laneAnswered.at(-1)).toMatchObject({ status: 499, target: 'model/up' })
    await vi.waitFor(() => expect(upstream.calls.at(-1)?.closedEarly).toBe(true), { timeout: 5000 })
  })

  it('answers a Model whose provider is mapped (not forwarded) as the app does', async () => {
    const { lane, app, byLane } = await both({ body: JSON.stringify({ model: 'model/mock', ...CHAT }) })
    expect(byLane).toBe(true)
    expect(lane.status).toBe(200)
    sameAnswer(lane, app)
  })

  it('is not there with CORS on: the app adds its headers to every answer', async () => {
    const cors = await startEmbedded({
      manifests: dir,
      watch: false,
      log: silentLogger,
      probeIntervalSeconds: 3600,
      corsOrigins: ['https://app.example'],
    })
    try {
      expect(cors.gateway.lane).toBeUndefined()
      expect(system.gateway.lane).toBeDefined()
    } finally {
      await cors.close()
    }
  })

  it('gives the OpenAI SDK an upstream 500 after ark retried it, and the answer next time', async () => {
    upstream.next({ status: 500 }, { status: 500 }, { status: 500 })
    const calls = upstream.calls.length
    const client = new OpenAI({
      apiKey: KEY,
      baseURL: `http://127.0.0.1:${String(withLane.port)}/v1`,
      // The SDK's own retries stay on: ark tells it not to retry what ark retried already.
    })
    const ask = () =>
      client.chat.completions.create({ model: 'model/up', messages: [{ role: 'user', content: 'hi' }] })
    const error = await ask().catch((err: unknown) => err)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(500)
    // ark's own retries (two by default) and no more: with x-should-retry: false, the SDK adds none of its own.
    expect(upstream.calls.length - calls).toBe(3)
    const ok = await ask()
    expect(ok.choices[0]?.message.role).toBe('assistant')
  })
})
