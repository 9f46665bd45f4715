/**
 * What a connection may cost, against the real `ark dev` process and its flags: sockets that send nothing,
 * headers or bodies that trickle in, idle keep-alive connections; and who may call from where (Host names,
 * CORS origins). Node bounds every phase; Deno.serve 2.9 has no connection timeouts, so there only the body
 * bound (the app's own) holds.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import { raw } from './gateway-suite.ts'

const FLAGS = [
  'dev',
  '-f',
  'examples',
  '--port',
  '0',
  '--probe-interval',
  '0',
  '--headers-timeout',
  '1',
  '--body-timeout',
  '2',
  '--idle-timeout',
  '1',
  '--allowed-hosts',
  'ark.example.com,.apps.example.com',
  '--cors-origins',
  'https://app.example.com',
]

interface Watched {
  readonly socket: Socket
  /** Everything the server sent, once it closed the connection. */
  readonly closed: Promise<string>
  /** What the server sent, once it sent a whole JSON error body (or closed the connection). */
  readonly answered: Promise<string>
}

function open(url: string, first = ''): Watched {
  const { port } = new URL(url)
  let data = ''
  const socket = connect(Number(port), '127.0.0.1', () => {
    if (first !== '') socket.write(first)
  })
  socket.setEncoding('utf8')
  socket.on('error', () => {})
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(data)))
  const answered = new Promise<string>((resolve) => {
    socket.on('data', (d: string) => {
      data += d
      if (/\r\n\r\n\{"error":.*\}\}$/s.test(data)) resolve(data)
    })
    void closed.then(resolve)
  })
  return { socket, closed, answered }
}

/** Writes `text` a byte at a time, every `ms`, until the socket closes. */
function trickle(socket: Socket, text: string, ms: number): void {
  let i = 0
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) {
      clearInterval(timer)
      return
    }
    socket.write(text[i++] ?? '')
  }, ms)
  socket.once('close', () => clearInterval(timer))
}

const POST_HEAD = (length: number) =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${String(length)}\r\n\r\n`

describe.each(['node', 'deno'] as const)('connections on %s', (runtime) => {
  let ark: ArkProcess
  beforeAll(async () => {
    ark = await startArk(FLAGS, { runtime })
  }, 30_000)
  afterAll(() => ark.stop())

  it('a body that trickles in is cut with a 408 that says what to do', { timeout: 30_000 }, async () => {
    const body = JSON.stringify({ model: 'agent/support-agent', messages: [{ role: 'user', content: 'hi' }] })
    const { socket, answered } = open(ark.url, POST_HEAD(body.length))
    trickle(socket, body, 300)
    // Deno.serve cannot close the connection from the app: the answer is what is bounded there.
    const answer = await answered
    socket.destroy()
    expect(answer).toMatch(/^HTTP\/1\.1 408/)
    expect(answer).toMatch(/"code":"request_timeout"/)
  })

  it('Host names: the listed ones and names under a listed domain, loopback always; others 403', async () => {
    const get = (host: string) =>
      raw(ark.url, `GET /healthz HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
    for (const host of ['ark.example.com', 'x.apps.example.com:443', 'localhost:1', '127.0.0.1'])
      expect((await get(host)).status, host).toBe(200)
    for (const host of ['evil.example', 'ark.example.com.evil.example']) {
      const res = await get(host)
      expect(res.status, host).toBe(403)
      expect(res.json?.error.code).toBe('host_not_allowed')
    }
  })

  it('CORS only for the configured origins', async () => {
    const preflight = (origin: string) =>
      fetch(`${ark.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,authorization',
        },
      })
    const allowed = await preflight('https://app.example.com')
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/content-type/)
    await allowed.body?.cancel()
    const other = await preflight('https://evil.example')
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
    await other.body?.cancel()
    const answer = await fetch(`${ark.url}/v1/models`, { headers: { origin: 'https://app.example.com' } })
    expect(answer.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(answer.headers.get('access-control-expose-headers')).toMatch(/x-request-id/)
    await answer.body?.cancel()
  })

  if (runtime === 'node') {
    it('a socket that sends nothing, or headers byte by byte, is closed', { timeout: 30_000 }, async () => {
      const silent = open(ark.url)
      const slow = open(ark.url)
      trickle(slow.socket, 'GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-pad: aaaaaaaaaaaaaaaa\r\n\r\n', 300)
      // Node says why before it closes: the same 408 as for slow headers.
      expect(await silent.closed).toMatch(/^HTTP\/1\.1 408 [\s\S]*"code":"request_timeout"/)
      const answer = await slow.closed
      expect(answer).toMatch(/^HTTP\/1\.1 408/)
      expect(answer).toMatch(/"code":"request_timeout"/)
    })

    it('an idle keep-alive connection is closed after the idle timeout', { timeout: 30_000 }, async () => {
      const conn = open(ark.url, 'GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n')
      const answer = await conn.closed
      expect(answer).toMatch(/^HTTP\/1\.1 200/)
      expect(answer).toMatch(/"status":"ok"/)
    })
  }
})
