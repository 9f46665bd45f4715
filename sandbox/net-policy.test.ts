import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { freePort, sleep } from '../test/fakes/http.ts'
import type { FetchOptions, HttpRequestSpec, ResolvedAddress } from './net-policy.ts'
import { alwaysDenied, NetDenied, NetFailed, NetPolicy } from './net-policy.ts'

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  /** Header names as they came over the wire, before Node lower-cases them. */
  readonly rawNames: string[]
  readonly body: string
}

interface TestServer {
  readonly origin: string
  readonly port: number
  readonly seen: Seen[]
}

const servers: Server[] = []
let a: TestServer
let b: TestServer
/** On 127.0.0.2, where nothing answers for `localhost`; undefined where that address is not configured. */
let alt: TestServer | undefined

beforeAll(async () => {
  a = await serve('127.0.0.1')
  b = await serve('127.0.0.1')
  alt = await serve('127.0.0.2').catch(() => undefined)
})

afterAll(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

/**
 * A real HTTP server recording every request, routed by path: /echo answers with what it received,
 * /redirect?status=&to= redirects, /loop redirects to itself, /big?n=[&chunked|&stall] sends n bytes (or declares them and stalls), /slow never
 * answers, /slow-body starts a body and stalls.
 */
async function serve(host: string): Promise<TestServer> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const rawNames = req.rawHeaders.filter((_, i) => i % 2 === 0)
      const body = Buffer.concat(chunks).toString('utf8')
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawNames, body }
      seen.push(entry)
      route(req, res, entry)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  servers.push(server)
  const { port } = server.address() as AddressInfo
  return { origin: `http://${host}:${String(port)}`, port, seen }
}

function route(req: IncomingMessage, res: ServerResponse, entry: Seen): void {
  const url = new URL(req.url ?? '/', 'http://test')
  const stop = new AbortController()
  res.on('close', () => stop.abort())
  switch (url.pathname) {
    case '/echo':
      res.setHeader('X-Reply', 'yes')
      res.setHeader('x-multi', ['1', '2'])
      res.writeHead(201, { 'content-type': 'application/json' })
      res.end(JSON.stringify(entry))
      return
    case '/redirect':
      res.writeHead(Number(url.searchParams.get('status')), { location: url.searchParams.get('to') ?? '/' })
      res.end()
      return
    case '/loop':
      res.writeHead(302, { location: '/loop' })
      res.end()
      return
    case '/big': {
      const body = 'x'.repeat(Number(url.searchParams.get('n')))
      if (url.searchParams.has('stall')) {
        // Declares the length, sends nothing: only a client that believes the header fails at once.
        res.writeHead(200, { 'content-length': body.length })
        res.flushHeaders()
        void sleep(10_000, stop.signal).then(() => res.end(body))
        return
      }
      // Without a length Node sends it chunked: the limit must hold while reading, not only up front.
      if (!url.searchParams.has('chunked')) res.setHeader('content-length', body.length)
      res.writeHead(200)
      res.end(body)
      return
    }
    case '/slow':
      void sleep(10_000, stop.signal).then(() => res.end('late'))
      return
    case '/slow-body':
      res.writeHead(200, { 'content-length': '100' })
      res.write('partial')
      void sleep(10_000, stop.signal).then(() => res.end())
      return
    default:
      res.writeHead(404)
      res.end()
  }
}

function last(server: TestServer): Seen {
  const seen = server.seen[server.seen.length - 1]
  if (seen === undefined) throw new Error(`${server.origin} has seen no request`)
  return seen
}

/** A resolver answering from a table; any other name does not resolve. */
function resolver(table: Record<string, string[]>) {
  return vi.fn((name: string): Promise<readonly ResolvedAddress[]> => {
    const addresses = table[name]
    if (addresses === undefined) {
      return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' }))
    }
    return Promise.resolve(
      addresses.map((address) => ({ address, family: address.includes(':') ? (6 as const) : (4 as const) })),
    )
  })
}

const OPTIONS: FetchOptions = { timeoutMs: 5_000, maxResponseBytes: 1 << 20 }

function get(url: string, headers: Record<string, string> = {}): HttpRequestSpec {
  return { url, method: 'GET', headers }
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

function text(body: Uint8Array): string {
  return new TextDecoder().decode(body)
}

function echoed(body: Uint8Array): Seen {
  return JSON.parse(text(body)) as Seen
}

/** The error `promise` rejects with, which must be a `type`; its message. */
async function rejection(
  promise: Promise<unknown>,
  type: typeof NetDenied | typeof NetFailed,
): Promise<string> {
  const err = await promise.then(
    () => new Error('resolved, but was expected to reject'),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(type)
  return (err as Error).message
}

const denied = (promise: Promise<unknown>) => rejection(promise, NetDenied)
const failed = (promise: Promise<unknown>) => rejection(promise, NetFailed)

describe('NetPolicy.fetch to a granted host', () => {
  it('answers with status, body and lower-cased headers both ways', async () => {
    const policy = new NetPolicy({ allowedHosts: [`127.0.0.1:${String(a.port)}`] })
    const res = await policy.fetch(get(`${a.origin}/echo?q=1`, { 'X-Token': 'abc' }), OPTIONS)

    expect(res.status).toBe(201)
    expect(res.headers['x-reply']).toBe('yes')
    expect(res.headers['x-multi']).toBe('1, 2')
    expect(res.headers['content-type']).toBe('application/json')
    expect(Object.keys(res.headers).every((name) => name === name.toLowerCase())).toBe(true)
    // A Uint8Array of its own, not a Buffer that may be a view into a shared pool.
    expect(Object.getPrototypeOf(res.body)).toBe(Uint8Array.prototype)
    expect(res.body.byteOffset).toBe(0)
    expect(res.body.buffer.byteLength).toBe(res.body.byteLength)
    const seen = echoed(res.body)
    expect(seen.method).toBe('GET')
    expect(seen.url).toBe('/echo?q=1')
    expect(seen.rawNames).toContain('x-token')
    expect(seen.rawNames).not.toContain('X-Token')
    expect(seen.headers['x-token']).toBe('abc')
    expect(seen.headers.host).toBe(`127.0.0.1:${String(a.port)}`)
  })

  it('sends a POST body with its own length, and the Host it checked rather than the one asked for', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const res = await policy.fetch(
      {
        url: `${a.origin}/echo`,
        method: 'post',
        headers: { 'Content-Type': 'text/plain', Host: 'admin.internal', 'Content-Length': '999' },
        body: bytes('hello, server'),
      },
      OPTIONS,
    )

    const seen = echoed(res.body)
    expect(seen.method).toBe('POST')
    expect(seen.body).toBe('hello, server')
    expect(seen.headers['content-type']).toBe('text/plain')
    expect(seen.headers['content-length']).toBe('13')
    expect(seen.headers.host).toBe(`127.0.0.1:${String(a.port)}`)
  })

  it('connects to the address it checked, sending the name as Host', async ({ skip }) => {
    const server = alt
    if (server === undefined) {
      skip('127.0.0.2 is not a local address here')
      return
    }
    // Real DNS says localhost is 127.0.0.1 or ::1, where nothing listens on this port: only a client
    // that connects to the checked address reaches the server.
    const lookup = resolver({ localhost: ['127.0.0.2'] })
    const policy = new NetPolicy({ allowedHosts: ['localhost'], lookup })
    const res = await policy.fetch(get(`http://localhost:${String(server.port)}/echo`), OPTIONS)

    expect(res.status).toBe(201)
    expect(echoed(res.body).headers.host).toBe(`localhost:${String(server.port)}`)
    expect(lookup).toHaveBeenCalledTimes(1)
    expect(lookup).toHaveBeenCalledWith('localhost')
  })

  it('fails with NetFailed when nothing listens', async () => {
    const port = await freePort()
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    expect(await failed(policy.fetch(get(`http://127.0.0.1:${String(port)}/`), OPTIONS))).toMatch(
      /ECONNREFUSED/,
    )
  })
})

describe('NetPolicy allowlist', () => {
  it('denies a host that is not granted, without resolving it', async () => {
    const lookup = resolver({ 'other.example': ['93.184.216.34'] })
    const policy = new NetPolicy({ allowedHosts: ['api.example.com', '127.0.0.1'], lookup })
    expect(await denied(policy.check(new URL('http://other.example/')))).toMatch(
      /other\.example is not in this tool's allowedHosts/,
    )
    expect(lookup).not.toHaveBeenCalled()
  })

  it('denies everything when the tool grants no hosts, and says how to grant', async () => {
    const policy = new NetPolicy({ allowedHosts: [] })
    const before = a.seen.length
    const message = await denied(policy.fetch(get(`${a.origin}/echo`), OPTIONS))
    expect(message).toMatch(/grants no hosts/)
    expect(message).toMatch(/allowedHosts/)
    expect(a.seen.length).toBe(before)
  })

  it('denies a port other than the one granted', async () => {
    const policy = new NetPolicy({ allowedHosts: [`127.0.0.1:${String(a.port)}`] })
    expect(await denied(policy.fetch(get(`${b.origin}/echo`), OPTIONS))).toMatch(
      new RegExp(`granted on port ${String(a.port)} only, not ${String(b.port)}`),
    )

    const lookup = resolver({ localhost: ['127.0.0.1'] })
    const local = new NetPolicy({ allowedHosts: ['localhost:8080'], lookup })
    await expect(local.check(new URL('http://localhost:8080/x'))).resolves.toEqual({
      address: '127.0.0.1',
      family: 4,
    })
    await denied(local.check(new URL('http://localhost:8081/x')))
    await denied(local.check(new URL('http://localhost/x')))
  })

  it('counts the default port when a pattern names one', async () => {
    const lookup = resolver({ 'example.com': ['93.184.216.34'] })
    const tls = new NetPolicy({ allowedHosts: ['example.com:443'], lookup })
    await expect(tls.check(new URL('https://example.com/'))).resolves.toMatchObject({
      address: '93.184.216.34',
    })
    await denied(tls.check(new URL('http://example.com/')))
    const plain = new NetPolicy({ allowedHosts: ['example.com:80'], lookup })
    await expect(plain.check(new URL('http://example.com/'))).resolves.toMatchObject({ family: 4 })
    await denied(plain.check(new URL('https://example.com/')))
  })

  it('grants subdomains for *.domain but not the apex, case-insensitively', async () => {
    const lookup = resolver({
      'api.example.com': ['93.184.216.34'],
      'a.b.example.com': ['93.184.216.34'],
      'example.com': ['93.184.216.34'],
      'badexample.com': ['93.184.216.34'],
    })
    const policy = new NetPolicy({ allowedHosts: ['*.Example.COM'], lookup })
    await expect(policy.check(new URL('https://API.example.com/'))).resolves.toBeDefined()
    await expect(policy.check(new URL('https://a.b.example.com/'))).resolves.toBeDefined()
    await denied(policy.check(new URL('https://example.com/')))
    await denied(policy.check(new URL('https://badexample.com/')))
  })

  it('refuses only http and https', async () => {
    const policy = new NetPolicy({ allowedHosts: ['*'] })
    expect(await denied(policy.fetch(get('file:///etc/passwd'), OPTIONS))).toMatch(/file:/)
    expect(await denied(policy.check(new URL('ftp://127.0.0.1/')))).toMatch(/only http: and https:/)
  })

  it('refuses URLs with credentials, without repeating them', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const before = a.seen.length
    const url = `http://plugin:hunter2@127.0.0.1:${String(a.port)}/echo`
    const message = await denied(policy.fetch(get(url), OPTIONS))
    expect(message).toMatch(/credentials/)
    expect(message).not.toMatch(/hunter2/)
    expect(a.seen.length).toBe(before)
  })

  it('refuses malformed patterns when the policy is built', () => {
    for (const pattern of [
      'http://x.com',
      'x.com/path',
      'user@x.com',
      '*.0.0.1',
      'api.*.com',
      '::1',
      'x.com:0',
    ]) {
      expect(() => new NetPolicy({ allowedHosts: [pattern] }), pattern).toThrow(/not a host pattern/)
    }
    expect(() => new NetPolicy({ allowedHosts: ['[::1]:8080', '10.0.0.1', '*', '*:8443'] })).not.toThrow()
  })
})

describe('NetPolicy addresses', () => {
  it('denies the metadata address even when granted, in every spelling', async () => {
    const explicit = new NetPolicy({
      allowedHosts: ['169.254.169.254', '[::ffff:169.254.169.254]', '[::ffff:a9fe:a9fe]'],
    })
    expect(await denied(explicit.check(new URL('http://169.254.169.254/latest/meta-data')))).toMatch(
      /169\.254\.169\.254 is a cloud metadata address/,
    )
    expect(await denied(explicit.check(new URL('http://[::ffff:169.254.169.254]/')))).toMatch(/metadata/)
    expect(await denied(explicit.check(new URL('http://[::ffff:a9fe:a9fe]/')))).toMatch(/metadata/)

    const any = new NetPolicy({ allowedHosts: ['*'] })
    expect(await denied(any.check(new URL('http://[::ffff:a9fe:a9fe]/')))).toMatch(/metadata/)
    // The URL parser reads this as 169.254.169.254, and so would the connection.
    expect(await denied(any.check(new URL('http://0xa9fea9fe/')))).toMatch(/metadata/)
  })

  it('denies the metadata name even when granted, without resolving it', async () => {
    const lookup = resolver({ 'metadata.google.internal': ['93.184.216.34'] })
    const policy = new NetPolicy({ allowedHosts: ['metadata.google.internal'], lookup })
    expect(
      await denied(policy.check(new URL('http://metadata.google.internal/computeMetadata/v1/'))),
    ).toMatch(/metadata/)
    expect(lookup).not.toHaveBeenCalled()
  })

  it('denies a granted name when any address it resolves to is link-local', async () => {
    const lookup = resolver({
      'api.example.com': ['169.254.169.254'],
      'mixed.example.com': ['93.184.216.34', '169.254.169.254'],
      'mapped.example.com': ['::ffff:a9fe:a9fe'],
      'nat64.example.com': ['64:ff9b::a9fe:a9fe'],
    })
    const policy = new NetPolicy({ allowedHosts: ['*.example.com'], lookup })
    expect(await denied(policy.check(new URL('https://api.example.com/')))).toMatch(
      /api\.example\.com resolves to 169\.254\.169\.254, a cloud metadata address/,
    )
    expect(await denied(policy.check(new URL('https://mixed.example.com/')))).toMatch(/169\.254\.169\.254/)
    expect(await denied(policy.check(new URL('https://mapped.example.com/')))).toMatch(/metadata/)
    expect(await denied(policy.check(new URL('https://nat64.example.com/')))).toMatch(/metadata/)
  })

  it('lets * grant a public name but not loopback or private addresses', async () => {
    const lookup = resolver({
      'public.example': ['93.184.216.34'],
      'private.example': ['10.0.0.1'],
      'rebind.example': ['127.0.0.1'],
      localhost: ['127.0.0.1'],
    })
    const policy = new NetPolicy({ allowedHosts: ['*'], lookup })
    await expect(policy.check(new URL('https://public.example/'))).resolves.toEqual({
      address: '93.184.216.34',
      family: 4,
    })
    expect(await denied(policy.fetch(get(`${a.origin}/echo`), OPTIONS))).toMatch(/loopback/)
    expect(await denied(policy.check(new URL('http://[::1]/')))).toMatch(/loopback/)
    expect(await denied(policy.check(new URL('http://localhost/')))).toMatch(/loopback/)
    expect(await denied(policy.check(new URL('https://private.example/')))).toMatch(
      /private\.example resolves to 10\.0\.0\.1, a private address/,
    )
    expect(await denied(policy.check(new URL('https://rebind.example/')))).toMatch(
      /rebind\.example resolves to 127\.0\.0\.1, a loopback address/,
    )
    expect(await denied(policy.check(new URL('http://192.168.1.1/')))).toMatch(/private/)
  })

  it('lets a host named explicitly resolve to a private address', async () => {
    const lookup = resolver({ 'db.internal': ['10.0.0.1'], 'svc.corp.example': ['fd12::1'] })
    const policy = new NetPolicy({ allowedHosts: ['*', 'db.internal', '*.corp.example'], lookup })
    await expect(policy.check(new URL('http://db.internal/'))).resolves.toEqual({
      address: '10.0.0.1',
      family: 4,
    })
    await expect(policy.check(new URL('http://svc.corp.example/'))).resolves.toEqual({
      address: 'fd12::1',
      family: 6,
    })
  })

  it('lets a name reach loopback only when the pattern is localhost', async () => {
    const lookup = resolver({ 'api.test': ['127.0.0.1'], localhost: ['::1', '127.0.0.1'] })
    const named = new NetPolicy({ allowedHosts: ['api.test', '127.0.0.1', '*.test'], lookup })
    expect(await denied(named.check(new URL('http://api.test/')))).toMatch(
      /api\.test resolves to 127\.0\.0\.1, a loopback address/,
    )
    const local = new NetPolicy({ allowedHosts: ['localhost'], lookup })
    await expect(local.check(new URL('http://localhost/'))).resolves.toEqual({ address: '::1', family: 6 })
  })

  it('fails with NetFailed when a granted name does not resolve', async () => {
    const policy = new NetPolicy({ allowedHosts: ['gone.example'], lookup: resolver({}) })
    expect(await failed(policy.check(new URL('http://gone.example/')))).toMatch(
      /could not resolve.*ENOTFOUND/,
    )
  })
})

describe('NetPolicy redirects', () => {
  const redirect = (server: TestServer, status: number, to: string) =>
    `${server.origin}/redirect?status=${String(status)}&to=${encodeURIComponent(to)}`

  it('denies a redirect to the metadata address, saying it came through a redirect', async () => {
    const lookup = resolver({})
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1', '169.254.169.254'], lookup })
    const message = await denied(
      policy.fetch(get(redirect(a, 302, 'http://169.254.169.254/latest/meta-data')), OPTIONS),
    )
    expect(message).toMatch(/169\.254\.169\.254 is a cloud metadata address/)
    expect(message).toMatch(new RegExp(`through a redirect from 127\\.0\\.0\\.1:${String(a.port)}`))
  })

  it('denies a redirect to a host not granted', async () => {
    const lookup = resolver({ 'evil.example': ['93.184.216.34'] })
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'], lookup })
    const message = await denied(policy.fetch(get(redirect(a, 307, 'https://evil.example/steal')), OPTIONS))
    expect(message).toMatch(/evil\.example is not in this tool's allowedHosts/)
    expect(message).toMatch(/redirect/)
    expect(lookup).not.toHaveBeenCalled()
  })

  it.each([
    [301, 'GET', ''],
    [302, 'GET', ''],
    [303, 'GET', ''],
    [307, 'POST', 'payload'],
    [308, 'POST', 'payload'],
  ])('follows a %i within granted hosts: a POST arrives as %s', async (status, method, body) => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const res = await policy.fetch(
      {
        url: redirect(a, status, '/echo?after'),
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: bytes('payload'),
      },
      OPTIONS,
    )
    expect(res.status).toBe(201)
    const seen = echoed(res.body)
    expect(seen.url).toBe('/echo?after')
    expect(seen.method).toBe(method)
    expect(seen.body).toBe(body)
    expect(seen.headers['content-type']).toBe(body === '' ? undefined : 'text/plain')
  })

  it('keeps a HEAD a HEAD through a 302', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const res = await policy.fetch({ url: redirect(a, 302, '/echo'), method: 'HEAD', headers: {} }, OPTIONS)
    expect(res.status).toBe(201)
    expect(last(a).method).toBe('HEAD')
  })

  it('drops authorization and cookie when a redirect changes origin, not otherwise', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const headers = { Authorization: 'Bearer s3cret', Cookie: 'session=1', 'X-Keep': 'kept' }

    const same = echoed((await policy.fetch(get(redirect(a, 302, '/echo'), headers), OPTIONS)).body)
    expect(same.headers.authorization).toBe('Bearer s3cret')
    expect(same.headers.cookie).toBe('session=1')

    const other = echoed(
      (await policy.fetch(get(redirect(a, 302, `${b.origin}/echo`), headers), OPTIONS)).body,
    )
    expect(last(b).url).toBe('/echo')
    expect(other.headers.authorization).toBeUndefined()
    expect(other.headers.cookie).toBeUndefined()
    expect(other.headers['x-keep']).toBe('kept')
  })

  it('fails with NetFailed after too many redirects', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const before = a.seen.filter((s) => s.url === '/loop').length
    expect(await failed(policy.fetch(get(`${a.origin}/loop`), { ...OPTIONS, maxRedirects: 3 }))).toMatch(
      /more than 3 redirects/,
    )
    expect(a.seen.filter((s) => s.url === '/loop').length - before).toBe(4)
  })

  it('follows five redirects by default', async () => {
    const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })
    const before = a.seen.filter((s) => s.url === '/loop').length
    await failed(policy.fetch(get(`${a.origin}/loop`), OPTIONS))
    expect(a.seen.filter((s) => s.url === '/loop').length - before).toBe(6)
  })
})

describe('NetPolicy limits', () => {
  const policy = new NetPolicy({ allowedHosts: ['127.0.0.1'] })

  it('fails a response body over maxResponseBytes, declared or streamed', async () => {
    const options = { ...OPTIONS, maxResponseBytes: 100 }
    expect(await failed(policy.fetch(get(`${a.origin}/big?n=1000`), options))).toMatch(
      /response body exceeds 100 bytes/,
    )
    expect(await failed(policy.fetch(get(`${a.origin}/big?n=1000&chunked`), options))).toMatch(
      /response body exceeds 100 bytes/,
    )
    const declared = policy.fetch(get(`${a.origin}/big?n=1000&stall`), { ...options, timeoutMs: 3_000 })
    expect(await failed(declared)).toMatch(/response body exceeds 100 bytes/)
    const exact = await policy.fetch(get(`${a.origin}/big?n=100&chunked`), options)
    expect(exact.body.byteLength).toBe(100)
  })

  it('fails at the deadline when the server does not answer', async () => {
    const started = performance.now()
    const message = await failed(policy.fetch(get(`${a.origin}/slow`), { ...OPTIONS, timeoutMs: 200 }))
    expect(message).toMatch(new RegExp(`127\\.0\\.0\\.1:${String(a.port)} did not answer within 200 ms`))
    expect(performance.now() - started).toBeLessThan(2_000)
  })

  it('holds the deadline across redirects and while reading the body', async () => {
    const url = `${a.origin}/redirect?status=302&to=${encodeURIComponent('/slow-body')}`
    expect(await failed(policy.fetch(get(url), { ...OPTIONS, timeoutMs: 200 }))).toMatch(
      /did not answer within 200 ms/,
    )
  })

  it("rejects with the signal's reason when aborted", async () => {
    const reason = new Error('the plugin was cancelled')
    const controller = new AbortController()
    setTimeout(() => controller.abort(reason), 50)
    await expect(
      policy.fetch(get(`${a.origin}/slow`), { ...OPTIONS, signal: controller.signal }),
    ).rejects.toBe(reason)
    await expect(
      policy.fetch(get(`${a.origin}/echo`), { ...OPTIONS, signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason)
  })

  it('never puts header values in its errors', async () => {
    const secret = 'Bearer sk-live-0123456789'
    const headers = { Authorization: secret }
    const messages = [
      await denied(policy.fetch(get('http://elsewhere.example/', headers), OPTIONS)),
      await denied(policy.fetch(get(`${a.origin}/echo`, { 'X-Key': `${secret}\r\nX-Injected: 1` }), OPTIONS)),
      await failed(policy.fetch(get(`${a.origin}/slow`, headers), { ...OPTIONS, timeoutMs: 50 })),
    ]
    expect(messages[1]).toMatch(/x-key/)
    for (const message of messages) expect(message).not.toMatch(/sk-live/)
  })
})

describe('alwaysDenied', () => {
  it.each([
    ['169.254.169.254', /metadata/],
    ['100.100.100.200', /metadata/],
    ['fd00:ec2::254', /metadata/],
    ['[fd00:ec2::254]', /metadata/],
    ['metadata.google.internal', /metadata/],
    ['Metadata.Google.Internal.', /metadata/],
    ['169.254.1.1', /link-local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['febf:ffff::1', /link-local/],
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['0.1.2.3', /reserved/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['ff02::1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['::ffff:169.254.169.254', /metadata.*169\.254\.169\.254 inside IPv6/],
    ['::ffff:a9fe:a9fe', /metadata/],
    ['::169.254.169.254', /metadata/],
    ['::ffff:0:a9fe:a9fe', /metadata/],
    ['64:ff9b::a9fe:a9fe', /metadata/],
    ['64:ff9b::169.254.169.254', /metadata/],
    ['::ffff:0.0.0.0', /unspecified/],
    ['0xa9.0xfe.0xa9.0xfe', /metadata/],
  ])('denies %s', (address, reason) => {
    expect(alwaysDenied(address)).toMatch(reason)
  })

  it.each([
    '93.184.216.34',
    '10.0.0.1',
    '127.0.0.1',
    '::1',
    '::ffff:127.0.0.1',
    'fd00::1',
    'fec0::1',
    '2606:4700:4700::1111',
    '169.253.255.255',
    '169.255.0.0',
    '223.255.255.255',
    '64:ff9b::5db8:d822',
    'example.com',
    'metadata.google.internal.example.com',
  ])('leaves %s to the allowlist', (address) => {
    expect(alwaysDenied(address)).toBeUndefined()
  })
})
