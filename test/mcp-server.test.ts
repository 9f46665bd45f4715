/**
 * ark's agents as MCP tools, as an MCP host sees them: the SDK's Client over streamable HTTP against `ark dev`'s
 * gateway (POST /mcp and /mcp/agent/<name>), with the mock model and, for a run that hangs, a fake OpenAI
 * upstream. Also what a host that sends garbage gets: JSON-RPC errors, never a crash.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Progress } from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { EmbeddedOptions } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import { serve, silentLogger } from '../gateway/index.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'

const CONFORMANCE = fileURLToPath(
  new URL('../node_modules/@modelcontextprotocol/conformance/dist/index.js', import.meta.url),
)
const EXPECTED_FAILURES = fileURLToPath(new URL('./fixtures/mcp/conformance-expected.yaml', import.meta.url))
const CONFORMANCE_CLIENT = fileURLToPath(new URL('./fixtures/mcp/conformance-client.ts', import.meta.url))

const manifests = (upstream: string) => `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: upstream }
spec:
  provider: openai
  model: { value: gpt-4o }
  config: { openai: { baseUrl: { value: "${upstream}" }, apiKey: { value: sk-test } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec:
  description: Answers questions, using a calculator.
  prompt: You help.
  tools: [{ type: built-in, name: calculator }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow }
spec: { prompt: You take your time., modelRef: { name: upstream } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: greeter }
spec:
  prompt: "Greet {{.name}}."
  parameters:
    - name: name
      valueFrom: { queryParameterRef: { name: name } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: lost }
spec: { prompt: hi, modelRef: { name: missing } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: pair }
spec:
  description: Two helpers in turn.
  strategy: sequential
  members: [{ name: helper, type: agent }, { name: slow, type: agent }]
---
apiVersion: v1
kind: Namespace
metadata: { name: other }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: other }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper, namespace: other }
spec: { prompt: You help elsewhere. }
`

interface System {
  readonly upstream: FakeUpstream
  /** The gateway's base URL. */
  readonly base: string
  /** A new MCP session of the SDK's Client at `path`, closed with the system. */
  connect(path?: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }>
  close(): Promise<void>
}

/** `ark dev`'s embedded system on the manifests above (with a fake OpenAI upstream), served on a free port. */
async function startSystem(options: Partial<EmbeddedOptions> = {}): Promise<System> {
  const upstream = await startFakeOpenAI()
  const dir = await mkdtemp(join(tmpdir(), 'ark-mcp-server-'))
  await writeFile(join(dir, 'agents.yaml'), manifests(upstream.url))
  const system = await startEmbedded({
    manifests: dir,
    watch: false,
    log: silentLogger,
    probeIntervalSeconds: 0,
    ...options,
  })
  await system.controlPlane.settled()
  const server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${String(server.port)}`
  const clients: Client[] = []
  return {
    upstream,
    base,
    async connect(path = '/mcp') {
      const client = new Client({ name: 'test-host', version: '1.0.0' })
      const transport = new StreamableHTTPClientTransport(new URL(`${base}${path}`))
      await client.connect(transport)
      clients.push(client)
      return { client, transport }
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()))
      await server.close()
      await system.close()
      await upstream.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

describe('agents as MCP tools', () => {
  let system: System
  let upstream: FakeUpstream
  let base: string

  beforeAll(async () => {
    // As `ark dev` on loopback: other Host names are refused (DNS rebinding; a conformance scenario).
    system = await startSystem({ allowedHosts: 'loopback' })
    ;({ upstream, base } = system)
  }, 60_000)

  afterAll(() => system.close())

  const connect = async (path = '/mcp'): Promise<Client> => (await system.connect(path)).client

  const text = (result: unknown) =>
    (result as { content: { text?: string }[] }).content.map((c) => c.text ?? '').join('')

  it('lists every Available agent as a tool, with its description and input schema', async () => {
    const client = await connect()
    expect(client.getServerVersion()?.name).toBe('ark')
    const { tools } = await client.listTools()
    const names = tools.map((t) => t.name).sort()
    // `lost` has no model: not Available, not listed. Another namespace's agent is prefixed.
    expect(names).toEqual(['greeter', 'helper', 'other__helper', 'slow', 'team__default__pair'])
    const helper = tools.find((t) => t.name === 'helper')
    expect(helper?.description).toBe('Answers questions, using a calculator.')
    expect(helper?.inputSchema).toMatchObject({ type: 'object', required: ['message'] })
    const greeter = tools.find((t) => t.name === 'greeter')
    expect(greeter?.inputSchema).toMatchObject({ required: ['message', 'parameters'] })
  })

  it('a call runs the agent (its own tools included) and returns its answer, with progress on the way', async () => {
    const client = await connect()
    const progress: Progress[] = []
    const result = await client.callTool(
      { name: 'helper', arguments: { message: 'calculator {"expression": "6 * 7"}' } },
      undefined,
      { onprogress: (p) => progress.push(p) },
    )
    expect(result.isError).toBeFalsy()
    expect(text(result)).toBe('calculator: 42')
    expect(progress.map((p) => p.message)).toEqual([
      'model call 1',
      'calling tool calculator',
      'model call 2',
    ])
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3])
  })

  it('parameters reach the prompt; a missing one is a tool error that says which', async () => {
    const client = await connect()
    const ok = await client.callTool({
      name: 'greeter',
      arguments: { message: 'hi', parameters: { name: 'Ada' } },
    })
    expect(ok.isError).toBeFalsy()
    const missing = await client.callTool({ name: 'greeter', arguments: { message: 'hi' } })
    expect(missing.isError).toBe(true)
    expect(text(missing)).toContain('arguments.parameters.name is required')
  })

  it('a team is a tool too: /mcp/team/<name> serves it alone, and a call runs the whole team', async () => {
    const client = await connect('/mcp/team/pair')
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name)).toEqual(['team__default__pair'])
    expect(tools[0]?.description).toBe('Two helpers in turn.')
    const progress: Progress[] = []
    const result = await client.callTool(
      { name: 'team__default__pair', arguments: { message: 'hello pair' } },
      undefined,
      { onprogress: (p) => progress.push(p) },
    )
    expect(result.isError).toBeFalsy()
    // The second member (on the upstream, the mock's echo) answers last.
    expect(text(result)).toBe('You said: hello pair')
    expect(progress.map((p) => p.message)).toContain('helper takes turn 1')
    expect(progress.map((p) => p.message)).toContain('slow takes turn 2')
    const missing = await system.connect('/mcp/team/nobody').catch((e: unknown) => e)
    expect(String(missing)).toMatch(/there is no team default\/nobody/)
  })

  it('/mcp/agent/<name> serves that agent alone; /mcp/agent/<ns>/<name> one of another namespace', async () => {
    const one = await connect('/mcp/agent/helper')
    expect((await one.listTools()).tools.map((t) => t.name)).toEqual(['helper'])
    const other = await connect('/mcp/agent/other/helper')
    expect((await other.listTools()).tools.map((t) => t.name)).toEqual(['other__helper'])
    const answer = await other.callTool({ name: 'other__helper', arguments: { message: 'hello there' } })
    expect(text(answer)).toBe('You said: hello there')
    // The scoped endpoint does not run another agent.
    await expect(one.callTool({ name: 'slow', arguments: { message: 'x' } })).rejects.toThrow(
      /no tool "slow"/,
    )
  })

  it('an unavailable agent called by name is a tool error with its reason', async () => {
    const client = await connect('/mcp/agent/lost')
    expect((await client.listTools()).tools).toEqual([])
    const result = await client.callTool({ name: 'lost', arguments: { message: 'hi' } })
    expect(result.isError).toBe(true)
    expect(text(result)).toMatch(/^ModelNotFound: agent\/lost is not available/)
  })

  it('cancelling a call stops its run: the model call upstream is abandoned', async () => {
    const client = await connect()
    upstream.next({ hang: true })
    const before = upstream.calls.length
    const aborter = new AbortController()
    const call = client.callTool({ name: 'slow', arguments: { message: 'take forever' } }, undefined, {
      signal: aborter.signal,
    })
    await vi.waitFor(() => expect(upstream.calls.length).toBe(before + 1), { timeout: 5000 })
    aborter.abort('the host gave up')
    await expect(call).rejects.toThrow()
    await vi.waitFor(() => expect(upstream.calls[before]?.closedEarly).toBe(true), { timeout: 5000 })
    // The session goes on.
    const answer = await client.callTool({ name: 'helper', arguments: { message: 'still here?' } })
    expect(text(answer)).toBe('You said: still here?')
  })

  it('arguments of the wrong shape are a tool error, an unknown tool a JSON-RPC error', async () => {
    const client = await connect()
    const empty = await client.callTool({ name: 'helper', arguments: {} })
    expect(empty.isError).toBe(true)
    expect(text(empty)).toContain('arguments.message must be a non-empty string')
    const extra = await client.callTool({ name: 'helper', arguments: { message: 'x', model: 'gpt-4o' } })
    expect(text(extra)).toContain('unknown argument "model"')
    await expect(client.callTool({ name: 'nope', arguments: { message: 'x' } })).rejects.toThrow(
      /no tool "nope"/,
    )
  })

  it(
    "passes @modelcontextprotocol/conformance's server suite but for the scenarios listed as expected failures",
    { timeout: 180_000 },
    async () => {
      const out = await mkdtemp(join(tmpdir(), 'ark-conformance-'))
      try {
        // Exit 0: every scenario passed but those listed, each of which failed (a listed one that passes fails).
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [
            CONFORMANCE,
            'server',
            '--url',
            `${base}/mcp`,
            '--expected-failures',
            EXPECTED_FAILURES,
            '-o',
            out,
          ],
          { maxBuffer: 16 * 1024 * 1024 },
        )
        for (const scenario of [
          'server-initialize',
          'ping',
          'tools-list',
          'server-sse-multiple-streams',
          'dns-rebinding-protection',
        ]) {
          expect(stdout).toMatch(new RegExp(`✓ ${scenario}: [1-9]\\d* passed, 0 failed`))
        }
      } finally {
        await rm(out, { recursive: true, force: true })
      }
    },
  )

  it(
    "ark's MCP client passes the kit's client scenarios that apply, elicitation listed as expected to fail",
    { timeout: 180_000 },
    async () => {
      const out = await mkdtemp(join(tmpdir(), 'ark-conformance-'))
      try {
        // The auth scenarios are not run: ark's client sends headers from Secrets, it does no OAuth flow.
        for (const scenario of [
          'initialize',
          'tools_call',
          'sse-retry',
          'elicitation-sep1034-client-defaults',
        ]) {
          const { stdout, stderr } = await promisify(execFile)(
            process.execPath,
            [
              CONFORMANCE,
              'client',
              '--command',
              `${process.execPath} ${CONFORMANCE_CLIENT}`,
              '--scenario',
              scenario,
              '--expected-failures',
              EXPECTED_FAILURES,
              '-o',
              out,
            ],
            { maxBuffer: 16 * 1024 * 1024 },
          )
          // Exit 0 is the verdict; the summary says it was this one's own.
          expect(`${stdout}${stderr}`, scenario).toMatch(
            scenario.startsWith('elicitation') ? /OVERALL: FAILED/ : /OVERALL: PASSED/,
          )
        }
        // What ark's client did in each (its stdout, kept by the kit): the tool answered, and elicitation was
        // refused as a method ark's client does not offer, not a client that failed to start.
        const said = async (scenario: string) => {
          const folder = (await readdir(out)).find((f) => f.startsWith(`${scenario}-`))
          return folder === undefined ? '' : await readFile(join(out, folder, 'stdout.txt'), 'utf8')
        }
        expect(await said('tools_call')).toContain('add_numbers: The sum of 2 and 3 is 5')
        expect(await said('elicitation-sep1034-client-defaults')).toContain(
          'test_client_elicitation_defaults: Elicitation error: MCP error -32601: Method not found',
        )
      } finally {
        await rm(out, { recursive: true, force: true })
      }
    },
  )

  it('bad HTTP gets JSON-RPC errors with fitting statuses, and the gateway keeps serving', async () => {
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body,
      })
    const cases: [Response, number, number][] = [
      [await post('/mcp', '{not json'), 400, -32700],
      [await post('/mcp', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), 400, -32600],
      [
        await post('/mcp', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', { 'mcp-session-id': 'forged' }),
        404,
        -32001,
      ],
      [
        await post(
          '/mcp/agent/nobody',
          JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
              protocolVersion: '2025-06-18',
              capabilities: {},
              clientInfo: { name: 'x', version: '1' },
            },
          }),
        ),
        404,
        -32602,
      ],
      [await fetch(`${base}/mcp`, { method: 'PUT' }), 405, -32600],
      [await fetch(`${base}/mcp`, { method: 'GET' }), 400, -32600],
    ]
    for (const [response, status, code] of cases) {
      expect(response.status).toBe(status)
      const body = (await response.json()) as { jsonrpc: string; error: { code: number; message: string } }
      expect(body.jsonrpc).toBe('2.0')
      expect(body.error.code).toBe(code)
      expect(body.error.message.length).toBeGreaterThan(10)
    }
    const wrongType = await fetch(`${base}/mcp`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'text/plain' },
    })
    expect(wrongType.status).toBe(415)
    const client = await connect()
    expect((await client.listTools()).tools.length).toBe(5)
  })
})

describe('MCP sessions are bounded, and what a host runs is never cut to make room', () => {
  let system: System
  let upstream: FakeUpstream
  let base: string

  beforeAll(async () => {
    system = await startSystem({ mcpSessions: { max: 2, idleMs: 300 } })
    ;({ upstream, base } = system)
  }, 60_000)

  afterAll(() => system.close())

  const connect = () => system.connect()

  it('refuses a session past the bound with 503 and Retry-After; DELETE makes room; idle ones end, busy ones stay', async () => {
    const busy = await connect()
    const idle = await connect()
    const refused = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    })
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
      'as many MCP sessions',
    )
    // Both sessions still work: nobody was evicted to make room.
    expect((await idle.client.listTools()).tools.length).toBe(5)

    // A call that takes longer than the idle time keeps its session; the idle one is ended.
    upstream.next({ hang: true })
    const before = upstream.calls.length
    const aborter = new AbortController()
    const call = busy.client.callTool({ name: 'slow', arguments: { message: 'hold on' } }, undefined, {
      signal: aborter.signal,
      timeout: 30_000,
    })
    await vi.waitFor(() => expect(upstream.calls.length).toBe(before + 1), { timeout: 5000 })
    const ping = async (sessionId: string | undefined) => {
      const res = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId ?? '',
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }),
      })
      await res.text()
      return res.status
    }
    // A ping would be a use: wait past the idle time (300 ms) and the sweep after it, then look once.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(await ping(idle.transport.sessionId)).toBe(404)
    // The busy session is still there (its call runs on).
    expect(await ping(busy.transport.sessionId)).toBe(200)
    expect(upstream.calls[before]?.closedEarly).toBe(false)
    aborter.abort()
    await expect(call).rejects.toThrow()
    await vi.waitFor(() => expect(upstream.calls[before]?.closedEarly).toBe(true), { timeout: 5000 })

    // DELETE ends a session; the room it leaves takes a new one.
    await busy.transport.terminateSession()
    const fresh = await connect()
    expect((await fresh.client.listTools()).tools.length).toBe(5)
  }, 30_000)
})
