/**
 * The MCP client connections against real servers: the reference server (`mcp-server-everything`, spawned
 * over streamable HTTP and SSE), a recording proxy in front of it, and scripted node:http servers that play
 * the hostile and broken ones. No part of the SDK is mocked.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../test/fakes/http.ts'
import { startRecordingProxy } from '../../../test/fixtures/mcp/recording-proxy.ts'
import type { Script, ScriptedServer } from '../../../test/fixtures/mcp/scripted-server.ts'
import { startScriptedServer } from '../../../test/fixtures/mcp/scripted-server.ts'
import type { EverythingServer } from '../../../test/mcp-everything.ts'
import { startEverything } from '../../../test/mcp-everything.ts'
import type { Logger } from '../../log.ts'
import type { McpClientsOptions, McpEndpoint, McpState } from './client.ts'
import { McpClients } from './client.ts'

const SECRET = 'sk-test-9f8e7d6c5b4a3210-SECRET'
const TENANT = 'tenant-acme-0042'

/** Every unhandled rejection and uncaught exception while this file runs: there must be none. */
const escaped: unknown[] = []
const onEscape = (err: unknown) => escaped.push(err)
beforeAll(() => {
  process.on('unhandledRejection', onEscape)
  process.on('uncaughtException', onEscape)
})
afterAll(() => {
  process.off('unhandledRejection', onEscape)
  process.off('uncaughtException', onEscape)
  expect(escaped).toEqual([])
})

/** A logger that keeps every line as given (unredacted), so that a test sees what ark itself wrote. */
function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = []
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      lines.push(JSON.stringify({ level, msg, ...fields }))
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines }
}

let clients: McpClients[] = []
function newClients(options: McpClientsOptions = {}): McpClients {
  // Closed at the last release unless a test says otherwise (the lingering is a test of its own).
  const c = new McpClients({ reconnect: { initialMs: 50, maxMs: 400 }, idleCloseMs: 0, ...options })
  clients.push(c)
  return c
}
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()))
  clients = []
})

/** Polls `check` until it holds (or fails the test with `what`). */
async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const never = new AbortController().signal

function ready(state: McpState): Extract<McpState, { status: 'ready' }> {
  if (state.status !== 'ready') throw new Error(`expected ready, got ${JSON.stringify(state)}`)
  return state
}

function failed(state: McpState): Extract<McpState, { status: 'failed' }> {
  if (state.status !== 'failed') throw new Error(`expected failed, got ${JSON.stringify(state)}`)
  return state
}

type Kind = 'http' | 'sse'

/** `it` for a case that only streamable HTTP has; over SSE the case does not exist (it is not skipped). */
function streamableOnly(kind: Kind): (name: string, fn: () => Promise<void>) => void {
  return (name, fn) => {
    if (kind === 'http') it(name, fn)
  }
}
const KINDS: Kind[] = ['http', 'sse']

describe.each(KINDS)('against mcp-server-everything over %s', (kind) => {
  let server: EverythingServer
  beforeAll(async () => {
    server = await startEverything(kind === 'http' ? 'streamableHttp' : 'sse')
  })
  afterAll(async () => {
    await server.stop()
  })
  const endpoint = (extra: Partial<McpEndpoint> = {}): McpEndpoint => ({
    name: `default/everything-${kind}`,
    url: server.url,
    transport: kind,
    headers: {},
    timeoutMs: 5000,
    ...extra,
  })

  it('lists the tools the server really serves, with their schemas', async () => {
    const handle = newClients().acquire(endpoint())
    expect(handle.state().status).toBe('connecting')
    const state = ready(await handle.settled())
    const names = state.tools.map((t) => t.name)
    expect(names).toContain('echo')
    expect(names).toContain('get-sum')
    const echo = state.tools.find((t) => t.name === 'echo')!
    expect(echo.description).toBe('Echoes back the input string')
    expect(echo.inputSchema).toMatchObject({
      type: 'object',
      properties: { message: { type: 'string' } },
      required: ['message'],
    })
    // Its one tool that can only run as an MCP task is left out, and said so.
    expect(names).not.toContain('simulate-research-query')
    expect(state.warnings).toEqual([
      'tool "simulate-research-query" skipped: it can only run as an MCP task, which ark does not use',
    ])
  })

  it('calls tools and maps their results', async () => {
    const handle = newClients().acquire(endpoint())
    await handle.settled()
    expect(await handle.callTool('echo', { message: 'hello there' }, never)).toEqual({
      content: 'Echo: hello there',
    })
    expect(await handle.callTool('get-sum', { a: 2, b: 40 }, never)).toEqual({
      content: 'The sum of 2 and 40 is 42.',
    })
    // An image is named, never dumped as base64.
    const image = await handle.callTool('get-tiny-image', {}, never)
    expect(image.isError).toBeUndefined()
    expect(image.content).toMatch(
      /^Here's the image you requested:\n\[image: image\/png, \d+ bytes\]\nThe image above is the MCP logo\.$/,
    )
    // An error of the server (a tool it does not have) is a tool error, not an exception.
    const unknown = await handle.callTool('no-such-tool', {}, never)
    expect(unknown.isError).toBe(true)
    expect(unknown.outcome).toBe('error')
    // The server's own words (it reports unknown tools as an isError result).
    expect(unknown.content).toBe('MCP error -32602: Tool no-such-tool not found')
  })

  it('shares one connection among every acquire of the same endpoint, and closes it with the last release', async () => {
    const mcp = newClients()
    const before = server.sessions()
    const a = mcp.acquire(endpoint())
    const b = mcp.acquire(endpoint({ name: 'default/other-agent:everything' }))
    expect(ready(await a.settled()).tools.length).toBeGreaterThan(0)
    expect(ready(await b.settled()).tools).toEqual(ready(a.state()).tools)
    expect(await b.callTool('echo', { message: 'from b' }, never)).toEqual({ content: 'Echo: from b' })
    expect(await a.callTool('echo', { message: 'from a' }, never)).toEqual({ content: 'Echo: from a' })
    expect(server.sessions() - before).toBe(1)
    expect(mcp.servers()).toEqual([
      { name: `default/everything-${kind}`, status: 'ready', tools: ready(a.state()).tools.length },
    ])

    // Other headers: another connection.
    const c = mcp.acquire(endpoint({ headers: { 'x-tenant': TENANT } }))
    ready(await c.settled())
    expect(server.sessions() - before).toBe(2)
    expect(mcp.servers()).toHaveLength(2)

    a.release()
    a.release() // idempotent: b still holds it
    expect(mcp.servers()).toHaveLength(2)
    expect(await b.callTool('echo', { message: 'still here' }, never)).toEqual({
      content: 'Echo: still here',
    })
    b.release()
    expect(mcp.servers().map((s) => s.status)).toEqual(['ready'])
    // A released handle answers with an error, and no connection is made for it.
    const late = await b.callTool('echo', { message: 'late' }, never)
    expect(late).toMatchObject({ isError: true, outcome: 'error' })
    c.release()
    expect(mcp.servers()).toEqual([])
    expect(server.sessions() - before).toBe(2)
  })

  it('keeps an unused connection for idleCloseMs: acquired again within it, it is the same session', async () => {
    const mcp = newClients({ idleCloseMs: 300 })
    const before = server.sessions()
    const first = mcp.acquire(endpoint())
    ready(await first.settled())
    first.release()
    expect(mcp.servers()).toHaveLength(1)
    // An agent prepared again acquires right after its old preparation let go.
    const again = mcp.acquire(endpoint())
    expect(again.state().status).toBe('ready')
    expect(await again.callTool('echo', { message: 'same' }, never)).toEqual({ content: 'Echo: same' })
    expect(server.sessions() - before).toBe(1)
    again.release()
    await until('the idle connection closed', () => mcp.servers().length === 0, 5000)
    expect(server.sessions() - before).toBe(1)
  })

  it('sends the headers on every request, the event stream included', async () => {
    const proxy = await startRecordingProxy(server.url)
    try {
      const handle = newClients().acquire(
        endpoint({ url: proxy.url, headers: { Authorization: `Bearer ${SECRET}`, 'X-Tenant': TENANT } }),
      )
      ready(await handle.settled())
      expect(await handle.callTool('echo', { message: 'with headers' }, never)).toEqual({
        content: 'Echo: with headers',
      })
      await until('the event stream was opened', () => proxy.requests.some((r) => r.method === 'GET'))
      const methods = new Set(proxy.requests.map((r) => r.method))
      expect(methods).toEqual(new Set(['GET', 'POST']))
      for (const r of proxy.requests) {
        expect(r.headers.authorization, `${r.method} ${r.path}`).toBe(`Bearer ${SECRET}`)
        expect(r.headers['x-tenant'], `${r.method} ${r.path}`).toBe(TENANT)
      }
    } finally {
      await proxy.close()
    }
  })

  it('goes failed when the server dies and ready again when it comes back, with nobody calling', async () => {
    const own = await startEverything(kind === 'http' ? 'streamableHttp' : 'sse')
    try {
      const { log, lines } = recordingLogger()
      const handle = newClients({ log, pingIntervalMs: 0 }).acquire(
        endpoint({ url: own.url, timeoutMs: 2000 }),
      )
      const seen: McpState['status'][] = []
      handle.onChange((s) => seen.push(s.status))
      const first = ready(await handle.settled())
      // The server announces a tools/list_changed right after initialize; let that refresh be done, so that
      // what notices the server's death below is the connection's own watch on it.
      await new Promise((r) => setTimeout(r, 300))
      await own.kill()
      await until('the connection is failed', () => handle.state().status === 'failed')
      const down = failed(handle.state())
      // Lost (the event stream broke, and a ping failed), or already a failed attempt to connect again.
      const url = own.url.replaceAll('.', '\\.')
      expect(down.error).toMatch(
        new RegExp(`^(connection to ${url} lost: .+|connect to ${url}: ECONNREFUSED)$`),
      )
      expect(down.retryInMs).toBeGreaterThanOrEqual(0)
      await own.restart()
      await until('the connection is ready again', () => handle.state().status === 'ready', 20_000)
      expect(ready(handle.state()).tools).toEqual(first.tools)
      expect(seen[0]).toBe('ready')
      expect(seen).toContain('failed')
      expect(seen.at(-1)).toBe('ready')
      expect(await handle.callTool('echo', { message: 'back' }, never)).toEqual({ content: 'Echo: back' })
      expect(own.sessions()).toBe(1)
      expect(lines.some((l) => l.includes('"level":"warn"') && l.includes('MCP server unavailable'))).toBe(
        true,
      )
    } finally {
      await own.stop()
    }
  })

  it('sends the cancellation when the caller gives up on a call', async () => {
    const handle = newClients().acquire(endpoint())
    ready(await handle.settled())
    const caller = new AbortController()
    const call = handle.callTool('trigger-long-running-operation', { duration: 30, steps: 30 }, caller.signal)
    setTimeout(() => caller.abort(), 200)
    const result = await call
    expect(result).toMatchObject({ isError: true, outcome: 'cancelled' })
    expect(result.content).toContain('trigger-long-running-operation')
    // The connection is unharmed.
    expect(await handle.callTool('echo', { message: 'after' }, never)).toEqual({ content: 'Echo: after' })
  })
})

it.each(KINDS)(
  'a released connection leaves nothing behind: the process exits on its own (%s)',
  async (kind) => {
    const server = await startEverything(kind === 'http' ? 'streamableHttp' : 'sse')
    try {
      const dead = `http://127.0.0.1:${String(await freePort())}${kind === 'http' ? '/mcp' : '/sse'}`
      const fixture = fileURLToPath(new URL('../../../test/fixtures/mcp/exit-check.ts', import.meta.url))
      const child = spawn(process.execPath, [fixture, server.url, kind, dead], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (out += d.toString()))
      const code = await new Promise<number | 'stuck'>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          resolve('stuck')
        }, 15_000)
        child.once('exit', (c) => {
          clearTimeout(timer)
          resolve(c ?? -1)
        })
      })
      expect(code, out).toBe(0)
      expect(JSON.parse(out.trim())).toEqual({ live: 'ready', dead: 'failed', content: 'Echo: bye' })
    } finally {
      await server.stop()
    }
  },
)

describe.each(KINDS)('against hostile servers over %s', (kind) => {
  let servers: ScriptedServer[] = []
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()))
    servers = []
  })
  async function scripted(script: Script = {}): Promise<ScriptedServer> {
    const s = await startScriptedServer(script)
    servers.push(s)
    return s
  }
  const endpoint = (server: ScriptedServer, extra: Partial<McpEndpoint> = {}): McpEndpoint => ({
    name: 'default/hostile',
    url: server.url(kind),
    transport: kind,
    headers: { authorization: `Bearer ${SECRET}` },
    timeoutMs: 1000,
    ...extra,
  })

  it('a call the server never answers ends with outcome timeout, and the connection stays usable', async () => {
    const server = await scripted({
      call: (name, args) =>
        name === 'slow' ? 'never' : { result: { content: [{ type: 'text', text: String(args.message) }] } },
    })
    const handle = newClients().acquire(endpoint(server, { toolCallTimeoutMs: 300 }))
    ready(await handle.settled())
    expect(await handle.callTool('slow', {}, never)).toEqual({
      isError: true,
      outcome: 'timeout',
      content: 'the MCP server default/hostile did not answer slow within 300 ms',
    })
    // The SDK told the server it gave up on the request.
    await until('the server heard of it', () =>
      server.messages().some((m) => m.method === 'notifications/cancelled'),
    )
    const cancelled = server.messages().find((m) => m.method === 'notifications/cancelled')
    const call = server.messages().find((m) => m.method === 'tools/call')
    expect(call?.id).toBeDefined()
    expect(cancelled?.params).toMatchObject({ requestId: call?.id })
    expect(await handle.callTool('echo', { message: 'fine' }, never)).toEqual({ content: 'fine' })
    expect(handle.state().status).toBe('ready')
  })

  it('passes arguments as given', async () => {
    const server = await scripted({
      call: (_name, args) => ({ result: { content: [{ type: 'text', text: JSON.stringify(args) }] } }),
    })
    const handle = newClients().acquire(endpoint(server))
    ready(await handle.settled())
    const args = { city: 'Zürich', n: 3, nested: { list: [1, null, 'x'] }, empty: {} }
    const result = await handle.callTool('echo', args, never)
    expect(JSON.parse(result.content)).toEqual(args)
  })

  it('maps every kind of content: text, structuredContent, resources, isError', async () => {
    const results: Record<string, unknown> = {
      structured: { content: [], structuredContent: { temperature: 21, unit: 'C' } },
      'text-wins': { content: [{ type: 'text', text: 'plain' }], structuredContent: { ignored: true } },
      mixed: {
        content: [
          { type: 'text', text: 'first' },
          { type: 'audio', data: 'AAAAAAAA', mimeType: 'audio/wav' },
          {
            type: 'resource',
            resource: { uri: 'file:///notes.txt', mimeType: 'text/plain', text: 'the notes' },
          },
          { type: 'resource', resource: { uri: 'file:///blob.bin', blob: 'QUJDRA==' } },
          { type: 'resource_link', name: 'readme', uri: 'file:///README.md' },
          { type: 'hologram', payload: 1 },
          { type: 'text', text: 'last' },
        ],
      },
      failing: { content: [{ type: 'text', text: 'the city is unknown' }], isError: true },
    }
    const server = await scripted({ call: (name) => ({ result: results[name] }) })
    const handle = newClients().acquire(endpoint(server))
    ready(await handle.settled())
    expect(await handle.callTool('structured', {}, never)).toEqual({
      content: '{"temperature":21,"unit":"C"}',
    })
    expect(await handle.callTool('text-wins', {}, never)).toEqual({ content: 'plain' })
    expect((await handle.callTool('mixed', {}, never)).content).toBe(
      [
        'first',
        '[audio: audio/wav, 6 bytes]',
        '[resource file:///notes.txt (text/plain)]\nthe notes',
        '[resource file:///blob.bin, 6 bytes]',
        '[resource link: readme file:///README.md]',
        '[hologram content]',
        'last',
      ].join('\n'),
    )
    expect(await handle.callTool('failing', {}, never)).toEqual({
      content: 'the city is unknown',
      isError: true,
      outcome: 'error',
    })
  })

  it('a server that accepts and never answers: failed with a clear error, then retries', async () => {
    const silent: Server = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = silent.address() as AddressInfo
      const url = `http://127.0.0.1:${String(port)}${kind === 'sse' ? '/sse' : '/mcp'}`
      const handle = newClients().acquire({
        name: 'default/silent',
        url,
        transport: kind,
        headers: {},
        timeoutMs: 300,
      })
      const state = failed(await handle.settled())
      expect(state.error).toBe(`connect to ${url}: no answer within 300 ms`)
      const call = await handle.callTool('echo', { message: 'x' }, never)
      expect(call).toMatchObject({ isError: true, outcome: 'error' })
      expect(call.content).toContain('default/silent is not connected')
      // It tries again on its own.
      await until('a second attempt', () => handle.state().status === 'connecting')
    } finally {
      silent.closeAllConnections()
      await new Promise<void>((resolve) => silent.close(() => resolve()))
    }
  })

  it('retries with a growing backoff, with jitter, up to its maximum', async () => {
    const url = `http://127.0.0.1:${String(await freePort())}/mcp`
    const handle = newClients({ reconnect: { initialMs: 50, maxMs: 400 } }).acquire({
      name: 'default/down',
      url,
      transport: kind,
      headers: {},
    })
    const waits: number[] = []
    handle.onChange((s) => {
      if (s.status === 'failed') waits.push(s.retryInMs)
    })
    await until('six attempts', () => waits.length >= 6)
    // 50, 100, 200, 400, then 400 again: each within ±20%, and never past the maximum.
    const bases = [50, 100, 200, 400, 400]
    waits.slice(0, 5).forEach((w, i) => {
      expect(w).toBeGreaterThanOrEqual(bases[i]! * 0.8)
      expect(w).toBeLessThanOrEqual(Math.min(400, bases[i]! * 1.2))
    })
  })

  it('nothing listening: failed with the system error and where', async () => {
    const url = `http://127.0.0.1:${String(await freePort())}${kind === 'sse' ? '/sse' : '/mcp'}?api_key=${SECRET}`
    const handle = newClients().acquire({ name: 'default/down', url, transport: kind, headers: {} })
    const state = failed(await handle.settled())
    expect(state.error).toMatch(
      new RegExp(`^connect to ${url.split('?')[0]!.replaceAll('.', '\\.')}: .*ECONNREFUSED`),
    )
    expect(state.error).not.toContain(SECRET)
    expect(state.error).not.toContain('api_key')
  })

  it('malformed JSON-RPC, bodies that are not JSON, garbage event streams: failed, clearly, no crash', async () => {
    const cases: { name: string; raw: NonNullable<Script['raw']>; expected: RegExp; timeoutMs?: number }[] = [
      {
        name: 'a JSON answer that is not JSON-RPC',
        raw: (req, res) => {
          if (kind === 'sse' && req.method === 'GET') {
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write('event: endpoint\ndata: /message?session=1\n\n')
            setTimeout(() => res.write('event: message\ndata: {"hello":"world"}\n\n'), 50)
            return true
          }
          if (req.method !== 'POST') return false
          res.writeHead(kind === 'sse' ? 202 : 200, { 'content-type': 'application/json' })
          res.end(kind === 'sse' ? '' : '{"hello":"world"}')
          return true
        },
        expected: kind === 'sse' ? /no answer within 400 ms \(last error: .+\)/ : /connect to .*: .+/,
      },
      {
        name: 'a body that is not JSON',
        raw: (req, res) => {
          if (req.method !== 'POST' && kind !== 'sse') return false
          if (kind === 'sse') {
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write('event: endpoint\ndata: /message?session=1\n\n')
            if (req.method === 'POST') res.end()
            setTimeout(() => res.write('data: <html>this is not json</html>\n\n'), 50)
            return true
          }
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('<html>this is not json</html>')
          return true
        },
        expected:
          kind === 'sse' ? /no answer within 400 ms \(last error: .*JSON.*\)/ : /connect to .*: .*JSON/,
      },
      {
        name: 'an HTML page',
        raw: (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/html' })
          res.end('<html><body>Welcome to nginx!</body></html>')
          return true
        },
        expected:
          kind === 'sse'
            ? /connect to .*: .*(content type|Invalid)/i
            : /connect to .*: .*content type: text\/html/,
      },
      {
        name: 'an event stream of garbage',
        raw: (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          res.write('\u0000\u0001garbage\r\n:::\n\nevent: \ndata: {{{{\n\n' + 'x'.repeat(5000) + '\n\n')
          if (kind === 'http') res.end()
          return true
        },
        expected: /connect to .*: .+/,
      },
      {
        name: 'HTTP 500 with a huge body',
        raw: (_req, res) => {
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end(`broken ${'z'.repeat(5 * 1024 * 1024)}`)
          return true
        },
        expected: /connect to .*: .*(500|broken)/,
        // Reading 5 MiB takes longer than 400 ms on a busy 2-core machine (CI read a timeout once).
        timeoutMs: 5000,
      },
    ]
    for (const c of cases) {
      const server = await scripted({ raw: c.raw })
      const handle = newClients().acquire(endpoint(server, { timeoutMs: c.timeoutMs ?? 400 }))
      const state = failed(await handle.settled())
      expect(state.error, c.name).toMatch(c.expected)
      expect(state.error.length, c.name).toBeLessThan(800)
      expect(state.error, c.name).not.toContain(SECRET)
    }
  })

  it('a server listing 10,000 tools is cut to maxTools, with a warning', async () => {
    const tools = Array.from({ length: 10_000 }, (_, i) => ({
      name: `tool_${String(i)}`,
      description: `tool number ${String(i)}`,
      inputSchema: { type: 'object' },
    }))
    const server = await scripted({ tools: () => tools })
    const handle = newClients({ maxTools: 1000 }).acquire(endpoint(server))
    const state = ready(await handle.settled())
    expect(state.tools).toHaveLength(1000)
    expect(state.tools[999]).toEqual({
      name: 'tool_999',
      description: 'tool number 999',
      inputSchema: { type: 'object' },
    })
    expect(state.warnings).toEqual([
      'the server lists 10000 tools; ark keeps the first 1000 (maxTools) and leaves the rest out',
    ])
  })

  it('skips tool entries without a valid name or schema, and says why', async () => {
    const server = await scripted({
      tools: () => [
        { name: 'good', description: 'fine', inputSchema: { type: 'object', properties: {} } },
        { description: 'no name', inputSchema: { type: 'object' } },
        { name: 42, inputSchema: { type: 'object' } },
        { name: 'has spaces in it', inputSchema: { type: 'object' } },
        { name: `leaks-${SECRET} x`, inputSchema: { type: 'object' } },
        { name: 'no-schema' },
        { name: 'string-schema', inputSchema: { type: 'string' } },
        { name: 'good', inputSchema: { type: 'object' } },
        'not an object',
        null,
        { name: 'titled', title: 'A title', inputSchema: { type: 'object' } },
      ],
    })
    const handle = newClients().acquire(endpoint(server))
    const state = ready(await handle.settled())
    expect(state.tools).toEqual([
      { name: 'good', description: 'fine', inputSchema: { type: 'object', properties: {} } },
      { name: 'titled', description: 'A title', inputSchema: { type: 'object' } },
    ])
    expect(state.warnings).toEqual([
      'tool #2 skipped: it has no name',
      'tool #3 skipped: it has no name',
      'tool "has spaces in it" skipped: a tool name is 1 to 128 of A-Z, a-z, 0-9, _, - and .',
      'tool "leaks-[REDACTED] x" skipped: a tool name is 1 to 128 of A-Z, a-z, 0-9, _, - and .',
      'tool "no-schema" skipped: its inputSchema is not a JSON Schema of type "object"',
      'tool "string-schema" skipped: its inputSchema is not a JSON Schema of type "object"',
      'tool "good" skipped: the server lists another tool of that name first',
      'tool #9 skipped: not an object',
      'tool #10 skipped: not an object',
    ])
  })

  it('a 50 MB result is truncated to maxResultBytes, with outcome too_large', async () => {
    const big = 'é'.repeat(25 * 1024 * 1024) // 50 MiB of UTF-8
    const server = await scripted({ call: () => ({ result: { content: [{ type: 'text', text: big }] } }) })
    const handle = newClients().acquire(endpoint(server, { toolCallTimeoutMs: 20_000 }))
    ready(await handle.settled())
    const result = await handle.callTool('huge', {}, never)
    expect(result.outcome).toBe('too_large')
    expect(result.isError).toBe(false)
    expect(Buffer.byteLength(result.content)).toBeLessThanOrEqual(1024 * 1024)
    expect(Buffer.byteLength(result.content)).toBeGreaterThan(1024 * 1024 - 200)
    expect(result.content).toMatch(
      /^(é)+\n\[truncated: the MCP server default\/hostile returned 52428800 bytes for huge; ark keeps the first 1048576\]$/,
    )
  })

  it.each([false, true])(
    'a message past maxMessageBytes is dropped unread: too_large, and the connection goes on (id last: %s)',
    async (idLast) => {
      const server = await scripted({
        idLast,
        call: (name, args) =>
          name === 'flood'
            ? { result: { content: [{ type: 'text', text: 'y'.repeat(3 * 1024 * 1024) }] } }
            : { result: { content: [{ type: 'text', text: String(args.message) }] } },
      })
      const { log, lines } = recordingLogger()
      const handle = newClients({ maxMessageBytes: 256 * 1024, log }).acquire(
        endpoint(server, { toolCallTimeoutMs: 5000 }),
      )
      ready(await handle.settled())
      const result = await handle.callTool('flood', {}, never)
      expect(result).toEqual({
        isError: true,
        outcome: 'too_large',
        content:
          'the MCP server default/hostile answered flood with a message of more than 262144 bytes (maxMessageBytes); ark dropped it unread',
      })
      expect(await handle.callTool('echo', { message: 'next' }, never)).toEqual({ content: 'next' })
      expect(handle.state().status).toBe('ready')
      expect(lines.some((l) => l.includes('oversized message'))).toBe(true)
    },
  )

  // The SSE transport answers on its one stream: the cases above cover it.
  streamableOnly(kind)(
    'a streamable HTTP server answering in event streams works the same, oversized events included',
    async () => {
      const server = await scripted({
        eventStreamAnswers: true,
        call: (name, args) =>
          name === 'flood'
            ? { result: { content: [{ type: 'text', text: 'y'.repeat(3 * 1024 * 1024) }] } }
            : { result: { content: [{ type: 'text', text: String(args.message) }] } },
      })
      const handle = newClients({ maxMessageBytes: 256 * 1024 }).acquire(endpoint(server))
      ready(await handle.settled())
      expect(await handle.callTool('echo', { message: 'streamed' }, never)).toEqual({ content: 'streamed' })
      expect(await handle.callTool('flood', {}, never)).toMatchObject({ isError: true, outcome: 'too_large' })
      expect(await handle.callTool('echo', { message: 'again' }, never)).toEqual({ content: 'again' })
    },
  )

  it('tools/list_changed refreshes the list and tells the listeners', async () => {
    let tools = [{ name: 'one', inputSchema: { type: 'object' } }]
    const server = await scripted({ tools: () => tools })
    const handle = newClients().acquire(endpoint(server))
    expect(ready(await handle.settled()).tools.map((t) => t.name)).toEqual(['one'])
    await until('the event stream is open', () => server.streams() > 0)
    const changes: McpState[] = []
    handle.onChange((s) => changes.push(s))
    tools = [...tools, { name: 'two', inputSchema: { type: 'object' } }]
    server.notify('notifications/tools/list_changed')
    await until('the listener heard of it', () => changes.length > 0)
    expect(changes).toHaveLength(1)
    expect(ready(changes[0]!).tools.map((t) => t.name)).toEqual(['one', 'two'])
    expect(ready(handle.state()).tools.map((t) => t.name)).toEqual(['one', 'two'])
  })

  it('keeps header secrets out of every error, warning, result and log line', async () => {
    const echoAuth = (recorded: { headers: Record<string, string> }) => recorded.headers.authorization ?? ''
    const server = await scripted({
      tools: () => [
        { name: 'ok', inputSchema: { type: 'object' } },
        { name: `bad ${SECRET}`, inputSchema: { type: 'object' } },
      ],
      call: (name, _args, recorded) =>
        name === 'reflect'
          ? { result: { content: [{ type: 'text', text: `you sent ${echoAuth(recorded)} and ${TENANT}` }] } }
          : { error: { code: -32000, message: `denied for ${echoAuth(recorded)}` } },
    })
    const { log, lines } = recordingLogger()
    const mcp = newClients({ log })
    const headers = { authorization: `Bearer ${SECRET}`, 'x-tenant': TENANT }
    const handle = mcp.acquire(endpoint(server, { headers }))
    const state = ready(await handle.settled())
    expect(state.warnings.join('\n')).toContain('[REDACTED]')
    const reflected = await handle.callTool('reflect', {}, never)
    expect(reflected.content).toBe(`you sent [REDACTED] and [REDACTED]`)
    const denied = await handle.callTool('deny', {}, never)
    expect(denied.content).toBe(
      'the MCP server default/hostile returned an error for deny: denied for [REDACTED] (code -32000)',
    )

    // A server that answers 401 with the header it got, and one that is down, echo nothing either.
    const rude = await scripted({
      raw: (req, res) => {
        res.writeHead(401, { 'content-type': 'text/plain' })
        res.end(`bad token: ${String(req.headers.authorization)}`)
        return true
      },
    })
    const refused = failed(await mcp.acquire(endpoint(rude, { headers })).settled())
    // The streamable transport quotes the body of an error status; the SSE one only its status.
    expect(refused.error).toContain(kind === 'http' ? 'bad token: [REDACTED]' : 'Non-200 status code (401)')

    const everything = [
      JSON.stringify(state),
      reflected.content,
      denied.content,
      refused.error,
      JSON.stringify(mcp.servers()),
      ...lines,
    ].join('\n')
    expect(lines.length).toBeGreaterThan(0)
    expect(everything).not.toContain(SECRET)
    expect(everything).not.toContain(TENANT)
  })

  it('settled() gives up at its signal; onChange unsubscribes; listeners that throw harm nobody', async () => {
    const silent = await scripted({ raw: () => true })
    const { log, lines } = recordingLogger()
    const handle = newClients({ log }).acquire(endpoint(silent, { timeoutMs: 2000 }))
    const stop = new AbortController()
    setTimeout(() => stop.abort(), 50)
    expect(await handle.settled(stop.signal)).toEqual({ status: 'connecting' })
    const heard: string[] = []
    const off = handle.onChange((s) => heard.push(`a:${s.status}`))
    handle.onChange(() => {
      throw new Error('listener bug')
    })
    handle.onChange((s) => heard.push(`b:${s.status}`))
    off()
    expect(failed(await handle.settled()).error).toContain('no answer within 2000 ms')
    expect(heard).toEqual(['b:failed'])
    expect(lines.some((l) => l.includes('listener bug'))).toBe(true)
  })

  // The SSE transport always has its stream: this is about streamable HTTP servers that offer none.
  streamableOnly(kind)(
    'pings a server that offers no event stream, and notices when it goes away',
    async () => {
      const server = await scripted({ noEventStream: true })
      const handle = newClients({ pingIntervalMs: 100 }).acquire(endpoint(server, { timeoutMs: 500 }))
      ready(await handle.settled())
      await until('a few pings', () => server.messages().filter((m) => m.method === 'ping').length >= 2)
      expect(handle.state().status).toBe('ready')
      await server.close()
      servers = servers.filter((s) => s !== server)
      await until('the connection is failed', () => handle.state().status === 'failed')
      expect(failed(handle.state()).error).toBe(
        `connection to ${server.url(kind)} lost: keepalive, and a ping failed: ECONNREFUSED`,
      )
    },
  )

  it('a call made while connecting waits for the connection', async () => {
    const server = await scripted()
    const handle = newClients().acquire(endpoint(server))
    expect(handle.state().status).toBe('connecting')
    expect(await handle.callTool('echo', { message: 'early' }, never)).toEqual({ content: 'early' })
  })
})

describe('endpoint configuration', () => {
  it('an invalid url or header fails the connection without a request, and says which', async () => {
    const mcp = newClients()
    expect(
      failed(await mcp.acquire({ name: 'a', url: 'not a url', transport: 'http', headers: {} }).settled())
        .error,
    ).toBe('the url is not a valid absolute URL')
    expect(
      failed(
        await mcp
          .acquire({ name: 'b', url: 'ftp://example.com/mcp', transport: 'http', headers: {} })
          .settled(),
      ).error,
    ).toBe('the url must be http or https, not ftp')
    const bad = mcp.acquire({
      name: 'c',
      url: 'http://127.0.0.1:9/mcp',
      transport: 'sse',
      headers: { 'x-key': `${SECRET}\nInjected: yes` },
    })
    const error = failed(await bad.settled()).error
    expect(error).toBe('header "x-key" has an invalid name or value')
  })

  it('credentials in the url become a Basic authorization header and never show', async () => {
    const server = await startScriptedServer()
    try {
      const url = new URL(server.url('http'))
      url.username = 'ark-user'
      url.password = 'p@ss-word-123456'
      const handle = newClients().acquire({ name: 'basic', url: url.href, transport: 'http', headers: {} })
      ready(await handle.settled())
      const sent = server.requests[0]!.headers.authorization
      expect(sent).toBe(`Basic ${Buffer.from('ark-user:p@ss-word-123456').toString('base64')}`)
    } finally {
      await server.close()
    }
  })

  it('acquire after close() throws (a programming error), close() is idempotent', async () => {
    const mcp = new McpClients()
    await mcp.close()
    await mcp.close()
    expect(() =>
      mcp.acquire({ name: 'x', url: 'http://127.0.0.1:1/mcp', transport: 'http', headers: {} }),
    ).toThrow(/after close/)
  })
})
