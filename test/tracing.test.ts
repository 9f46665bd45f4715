/**
 * Issue 22's traces, end to end: `ark dev` (and a gateway with a worker on Redis) exporting OTLP/HTTP to a
 * receiver written for the tests, called by the OpenAI SDK with a `traceparent`, its model a fake OpenAI
 * upstream that records the `traceparent` each call carried.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import { newKey } from '../gateway/index.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { fakeModelManifest, startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { OtlpReceiver, ReceivedSpan } from './fakes/otlp-receiver.ts'
import { startOtlpReceiver } from './fakes/otlp-receiver.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const manifests = (upstream: string) => `${fakeModelManifest(upstream)}---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec:
  prompt: You help, using a calculator.
  tools: [{ type: built-in, name: calculator }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: second }
spec: { prompt: You go second. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: pair }
spec: { strategy: sequential, members: [{ name: helper, type: agent }, { name: second, type: agent }] }
`

const MOCK_MODEL = `---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
`

const SERVER = 2
const CLIENT = 3
const ERROR = 2

/** A W3C traceparent of a caller's own span, ids chosen by the test. */
function callerContext() {
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('')
  const traceId = hex(32)
  const spanId = hex(16)
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` }
}

const ASK = 'calculator {"expression": "20 + 22"}'

describe('traces (OpenTelemetry, OTLP over HTTP)', () => {
  let receiver: OtlpReceiver
  let upstream: FakeUpstream
  let redis: RedisServer
  let dir: string
  const processes: ArkProcess[] = []
  const otel = () => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  })

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    upstream = await startFakeOpenAI()
    redis = await startRedis()
    dir = await mkdtemp(join(tmpdir(), 'ark-tracing-'))
    await writeFile(join(dir, 'all.yaml'), manifests(upstream.url))
  }, 30_000)

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()))
    await receiver.close()
    await upstream.close()
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const start = async (
    args: readonly string[],
    env: Record<string, string>,
    ready?: string,
    runtime: 'node' | 'deno' = 'node',
  ) => {
    const p = await startArk(args, { env, runtime, ...(ready === undefined ? {} : { ready }) })
    processes.push(p)
    return p
  }
  /** A chat completion through the OpenAI SDK: by default ASK to agent/helper, with no traceparent and no key. */
  const ask = (
    gateway: ArkProcess,
    options: { traceparent?: string; model?: string; content?: string; apiKey?: string } = {},
  ) =>
    new OpenAI({
      baseURL: `${gateway.url}/v1`,
      apiKey: options.apiKey ?? 'none',
      maxRetries: 0,
    }).chat.completions.create(
      {
        model: options.model ?? 'agent/helper',
        messages: [{ role: 'user', content: options.content ?? ASK }],
      },
      options.traceparent === undefined ? {} : { headers: { traceparent: options.traceparent } },
    )
  const inTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId)
  /**
   * The spans of a trace once every one named has been exported (a name, or `<service> <name>`). Each process
   * exports a span after its children, so the children of a span waited for are there too.
   */
  const exported = async (traceId: string, ...names: string[]): Promise<ReceivedSpan[]> => {
    await vi.waitFor(
      () => {
        const seen = new Set(inTrace(traceId).flatMap((s) => [s.name, `${s.service} ${s.name}`]))
        expect(names.filter((n) => !seen.has(n))).toEqual([])
      },
      { timeout: 10_000, interval: 100 },
    )
    return inTrace(traceId)
  }
  const one = (spans: readonly ReceivedSpan[], name: string): ReceivedSpan => {
    const found = spans.filter((s) => s.name === name)
    expect(
      found.map((s) => s.name),
      `spans named ${name} in ${spans.map((s) => s.name).join(', ')}`,
    ).toEqual([name])
    return found[0] as ReceivedSpan
  }
  /** The upstream calls since `from` and the traceparent each carried. */
  const upstreamParents = (from: number) =>
    upstream.calls
      .slice(from)
      .filter((c) => c.path.endsWith('/chat/completions'))
      .map((c) => c.headers.traceparent)

  it('ark dev: a request, its queue wait, the agent, each model and tool call, one trace under the caller', async () => {
    const ark = await start(['dev', '-f', dir, '--port', '0', '--probe-interval', '0'], otel())
    const caller = callerContext()
    const before = upstream.calls.length
    const answer = await ask(ark, { traceparent: caller.traceparent })
    expect(answer.choices[0]?.message.content).toBe('calculator: 42')

    const spans = await exported(caller.traceId, 'POST /v1/chat/completions')
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['ark-dev']))

    const server = one(spans, 'POST /v1/chat/completions')
    expect(server.parentSpanId).toBe(caller.spanId)
    expect(server.kind).toBe(SERVER)
    expect(server.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/chat/completions',
      'http.response.status_code': 200,
    })

    const wait = one(spans, 'queue wait')
    expect(wait.parentSpanId).toBe(server.spanId)
    expect(wait.attributes['ark.pool']).toBe('default/helper')

    const agent = one(spans, 'invoke_agent helper')
    expect(agent.parentSpanId).toBe(server.spanId)
    expect(agent.status).not.toBe(ERROR)
    expect(agent.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': 'helper',
      'gen_ai.agent.id': 'default/helper',
      'ark.outcome': 'answer',
      'ark.iterations': 2,
    })
    expect(agent.attributes['gen_ai.usage.input_tokens']).toBeGreaterThan(0)

    const chats = spans.filter((s) => s.name === 'chat gpt-4o')
    expect(chats).toHaveLength(2)
    for (const chat of chats) {
      expect(chat.parentSpanId).toBe(agent.spanId)
      expect(chat.kind).toBe(CLIENT)
      expect(chat.attributes).toMatchObject({
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
      })
      expect(chat.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0)
    }
    expect(chats.map((c) => c.attributes['gen_ai.response.finish_reasons'])).toEqual(
      expect.arrayContaining([['tool_calls'], ['stop']]),
    )

    const tool = one(spans, 'execute_tool calculator')
    expect(tool.parentSpanId).toBe(agent.spanId)
    expect(tool.attributes).toMatchObject({
      'gen_ai.tool.name': 'calculator',
      'gen_ai.operation.name': 'execute_tool',
      'ark.tool.outcome': 'ok',
    })

    // Each model call carried its own chat span upstream, in the caller's trace.
    const parents = upstreamParents(before)
    expect(parents).toHaveLength(2)
    expect(new Set(parents)).toEqual(new Set(chats.map((c) => `00-${caller.traceId}-${c.spanId}-01`)))
  })

  it('a team: its run, a span per turn, and each member’s run under its turn', async () => {
    const ark = processes[0] as ArkProcess
    const caller = callerContext()
    await ask(ark, { model: 'team/pair', content: 'hello', traceparent: caller.traceparent })
    const spans = await exported(
      caller.traceId,
      'POST /v1/chat/completions',
      'invoke_agent pair',
      'invoke_agent second',
    )
    const server = one(spans, 'POST /v1/chat/completions')
    const team = one(spans, 'invoke_agent pair')
    expect(team.parentSpanId).toBe(server.spanId)
    expect(team.attributes).toMatchObject({
      'gen_ai.agent.id': 'team/default/pair',
      'ark.team.strategy': 'sequential',
      'ark.outcome': 'answer',
    })
    for (const member of ['helper', 'second']) {
      const turn = one(spans, `team_turn ${member}`)
      expect(turn.parentSpanId).toBe(team.spanId)
      expect(turn.attributes).toMatchObject({ 'ark.team.member': member, 'ark.outcome': 'answer' })
      expect(one(spans, `invoke_agent ${member}`).parentSpanId).toBe(turn.spanId)
    }
  })

  it('starts a trace of its own for a caller that sends none, and marks a failed run', async () => {
    const ark = processes[0] as ArkProcess
    const known = new Set(receiver.spans.map((s) => s.traceId))
    upstream.next({
      status: 400,
      body: { error: { message: 'bad request, says the upstream', type: 'invalid_request_error' } },
    })
    await expect(ask(ark)).rejects.toThrow()
    await vi.waitFor(
      () =>
        expect(receiver.spans.some((s) => !known.has(s.traceId) && s.name === 'invoke_agent helper')).toBe(
          true,
        ),
      { timeout: 10_000, interval: 100 },
    )
    const traceId =
      receiver.spans.find((s) => !known.has(s.traceId) && s.name === 'invoke_agent helper')?.traceId ?? ''
    const spans = await exported(traceId, 'POST /v1/chat/completions')
    expect(one(spans, 'POST /v1/chat/completions').parentSpanId).toBe('')
    const agent = one(spans, 'invoke_agent helper')
    expect(agent.status).toBe(ERROR)
    expect(agent.attributes['error.type']).toBe('error')
    expect(one(spans, 'chat gpt-4o').status).toBe(ERROR)
  })

  it('carries the trace across Redis: the worker that runs the task continues the gateway’s request', async () => {
    const env = { ...otel(), REDIS_URL: redis.url, ARK_REDIS_PREFIX: `tracing-${String(process.pid)}` }
    const gateway = await start(['gateway', '-f', dir, '--port', '0', '--probe-interval', '0'], env)
    await start(['worker', '--agent', 'default/helper', '-f', dir, '--port', '0'], env, 'taking tasks')
    const caller = callerContext()
    const before = upstream.calls.length
    const answer = await ask(gateway, { traceparent: caller.traceparent })
    expect(answer.choices[0]?.message.content).toBe('calculator: 42')
    const spans = await exported(caller.traceId, 'POST /v1/chat/completions', 'invoke_agent helper')
    const server = one(spans, 'POST /v1/chat/completions')
    const agent = one(spans, 'invoke_agent helper')
    expect(server.service).toBe('ark-gateway')
    expect(agent.service).toBe('ark-worker')
    expect(agent.parentSpanId).toBe(server.spanId)
    expect(one(spans, 'queue wait').service).toBe('ark-worker')
    const chats = spans.filter((s) => s.name === 'chat gpt-4o')
    expect(chats).toHaveLength(2)
    expect(new Set(upstreamParents(before))).toEqual(
      new Set(chats.map((c) => `00-${caller.traceId}-${c.spanId}-01`)),
    )
  })

  it('sends the trace on to webhook tools, MCP servers and remote A2A agents, whose spans join it', async () => {
    // The remote end is another ark, traced to the same receiver: an agent served over MCP and over A2A.
    const remoteDir = await mkdtemp(join(tmpdir(), 'ark-tracing-remote-'))
    await writeFile(
      join(remoteDir, 'all.yaml'),
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: echoer }
spec: { prompt: You echo. }
${MOCK_MODEL}`,
    )
    const remote = await start(['dev', '-f', remoteDir, '--port', '0', '--probe-interval', '0'], {
      ...otel(),
      OTEL_SERVICE_NAME: 'remote',
    })
    const hooked: (string | undefined)[] = []
    const hook = createServer((req, res) => {
      hooked.push(req.headers.traceparent as string | undefined)
      res.writeHead(200, { 'content-type': 'text/plain' }).end('hooked')
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const hookUrl = `http://127.0.0.1:${String((hook.address() as AddressInfo).port)}`
    const frontDir = await mkdtemp(join(tmpdir(), 'ark-tracing-front-'))
    await writeFile(
      join(frontDir, 'all.yaml'),
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: hook }
spec:
  type: http
  http: { url: "${hookUrl}/hook" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: remote-mcp }
spec: { address: { value: "${remote.url}/mcp/agent/echoer" }, transport: http, timeout: 10s }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: ask-remote }
spec: { type: mcp, mcp: { mcpServerRef: { name: remote-mcp }, toolName: echoer } }
---
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: remote-a2a }
spec: { address: { value: "${remote.url}/a2a/agent/echoer" }, pollInterval: 1h }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: caller }
spec:
  prompt: You call out.
  tools: [{ type: custom, name: hook }, { type: custom, name: ask-remote }]
${MOCK_MODEL}`,
    )
    try {
      const front = await start(['dev', '-f', frontDir, '--port', '0', '--probe-interval', '0'], otel())
      // Both answer once discovered (the MCP server's tools, the A2A server's card).
      await vi.waitFor(
        async () => {
          for (const model of ['agent/caller', 'agent/remote-a2a'])
            await ask(front, { model, content: 'ready?' })
        },
        { timeout: 15_000, interval: 300 },
      )

      // A webhook tool and an MCP tool, one turn each.
      const caller = callerContext()
      await ask(front, {
        model: 'agent/caller',
        content: 'hook {}\nask-remote {"message": "hi"}',
        traceparent: caller.traceparent,
      })
      const spans = await exported(
        caller.traceId,
        'ark-dev execute_tool hook',
        'ark-dev execute_tool ask-remote',
        'remote invoke_agent echoer',
      )
      const hookSpan = one(spans, 'execute_tool hook')
      expect(hooked).toEqual([`00-${caller.traceId}-${hookSpan.spanId}-01`])
      const mcpSpan = one(spans, 'execute_tool ask-remote')
      const remoteServer = spans.filter((s) => s.service === 'remote' && s.kind === SERVER)
      expect(remoteServer.map((s) => s.parentSpanId)).toContain(mcpSpan.spanId)

      // A remote A2A agent: the model call that sends the message is the remote request's parent.
      const viaA2A = callerContext()
      await ask(front, { model: 'agent/remote-a2a', content: 'hello', traceparent: viaA2A.traceparent })
      const a2aSpans = await exported(viaA2A.traceId, 'remote invoke_agent echoer')
      const chat = a2aSpans.find((s) => s.service === 'ark-dev' && s.name.startsWith('chat '))
      expect(chat?.kind).toBe(CLIENT)
      expect(chat?.attributes['gen_ai.provider.name']).toBe('a2a')
      const remoteRequests = a2aSpans.filter((s) => s.service === 'remote' && s.kind === SERVER)
      expect(remoteRequests.map((s) => s.parentSpanId)).toContain(chat?.spanId)
    } finally {
      hook.closeAllConnections()
      await new Promise((resolve) => hook.close(resolve))
      await rm(frontDir, { recursive: true, force: true })
      await rm(remoteDir, { recursive: true, force: true })
    }
  })

  it('writes an access log line per request, with the key id and the trace ids, never the key', async () => {
    const { key, sha256 } = newKey()
    const keysFile = join(dir, 'keys.json')
    await writeFile(keysFile, JSON.stringify({ keys: [{ id: 'ci', sha256 }] }))
    try {
      const ark = await start(
        ['dev', '-f', dir, '--port', '0', '--probe-interval', '0', '--access-log', '--api-keys', keysFile],
        otel(),
      )
      const caller = callerContext()
      await ask(ark, { content: 'hi', apiKey: key, traceparent: caller.traceparent })
      const refused = await fetch(`${ark.url}/v1/models?secret=query-text`, {
        headers: { authorization: 'Bearer wrong' },
      })
      expect(refused.status).toBe(401)
      const served = await ark.waitFor((l) => l.component === 'access' && l.status === 200)
      expect(served).toMatchObject({
        level: 'info',
        msg: 'request',
        method: 'POST',
        path: '/v1/chat/completions',
        route: '/v1/chat/completions',
        key: 'ci',
        trace_id: caller.traceId,
      })
      expect(served.target).toContain('helper')
      expect(typeof served.ms).toBe('number')
      // The server span's id: the line was written inside it.
      const spans = await exported(caller.traceId, 'POST /v1/chat/completions')
      expect(served.span_id).toBe(one(spans, 'POST /v1/chat/completions').spanId)
      const denied = await ark.waitFor((l) => l.component === 'access' && l.status === 401)
      expect(denied).toMatchObject({
        method: 'GET',
        // Refused before any route ran: the route is not known, as in the request metrics.
        route: 'unmatched',
        path: '/v1/models',
      })
      expect(denied.key).toBeUndefined()
      const everything = JSON.stringify(ark.lines) + ark.stderr()
      expect(everything).not.toContain(key)
      expect(everything).not.toContain('query-text')
    } finally {
      await rm(keysFile, { force: true })
    }
  })

  /** The one trace of a request to agent/helper: server span, agent run, two model calls and the tool call. */
  const expectHelperTrace = async (ark: ArkProcess, service: string) => {
    const caller = callerContext()
    const answer = await ask(ark, { traceparent: caller.traceparent })
    expect(answer.choices[0]?.message.content).toBe('calculator: 42')
    const spans = await exported(caller.traceId, 'POST /v1/chat/completions')
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set([service]))
    const server = one(spans, 'POST /v1/chat/completions')
    expect(server.parentSpanId).toBe(caller.spanId)
    expect(server.kind).toBe(SERVER)
    expect(server.attributes['http.response.status_code']).toBe(200)
    const agent = one(spans, 'invoke_agent helper')
    expect(agent.parentSpanId).toBe(server.spanId)
    expect(agent.attributes).toMatchObject({ 'ark.outcome': 'answer', 'ark.iterations': 2 })
    const chats = spans.filter((s) => s.name === 'chat gpt-4o')
    expect(chats.map((c) => [c.parentSpanId, c.kind])).toEqual([
      [agent.spanId, CLIENT],
      [agent.spanId, CLIENT],
    ])
    expect(one(spans, 'execute_tool calculator').parentSpanId).toBe(agent.spanId)
    expect(one(spans, 'queue wait').parentSpanId).toBe(server.spanId)
  }

  it('sends OTLP as protobuf when OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf', async () => {
    const types = receiver.contentTypes.length
    const ark = await start(['dev', '-f', dir, '--port', '0', '--probe-interval', '0'], {
      ...otel(),
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_SERVICE_NAME: 'ark-proto',
    })
    await expectHelperTrace(ark, 'ark-proto')
    expect(new Set(receiver.contentTypes.slice(types))).toEqual(new Set(['application/x-protobuf']))
    await ark.stop()
  })

  it('on Deno: ark dev sends the same trace (its context crosses awaits there too)', async () => {
    const ark = await start(
      ['dev', '-f', dir, '--port', '0', '--probe-interval', '0'],
      { ...otel(), OTEL_SERVICE_NAME: 'ark-on-deno' },
      undefined,
      'deno',
    )
    await expectHelperTrace(ark, 'ark-on-deno')
    await ark.stop()
  })

  it('is off without the OTEL variables: no traceparent goes upstream, even one the caller sent', async () => {
    const ark = await start(['dev', '-f', dir, '--port', '0', '--probe-interval', '0'], {})
    const before = upstream.calls.length
    await ask(ark, { traceparent: callerContext().traceparent })
    expect(upstreamParents(before)).toEqual([undefined, undefined])
  })

  it('refuses to start on a protocol it cannot send, naming the variable', async () => {
    const ark = startArk(['dev', '-f', dir, '--port', '0'], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    })
    await expect(ark).rejects.toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported/)
  })
})
