/**
 * The gateway suite: every route, outcome and error over real HTTP, with the real `openai` client as the
 * caller. Runtime-neutral (node:assert, fetch, node:net) so that the same cases run on Node under vitest
 * (gateway.test.ts) and on Deno (deno-gateway.ts).
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { SendMessageRequest, Task } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import { ClientFactory } from '@a2a-js/sdk/client'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import OpenAI from 'openai'
import { SUITE_LIMITS } from './gateway-server.ts'
import { parseExposition } from './prometheus.ts'

export interface SuiteContext {
  readonly url: string
  readonly client: OpenAI
}

export interface Case {
  readonly name: string
  run(ctx: SuiteContext): Promise<void>
}

export function clientFor(url: string, options: { maxRetries?: number } = {}): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-needed', maxRetries: options.maxRetries ?? 0 })
}

const user = (content: string) => [{ role: 'user' as const, content }]

async function post(url: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
  const text = await res.text()
  let json: { error?: { message: string; type: string; param: string | null; code: string | null } } = {}
  try {
    json = JSON.parse(text) as typeof json
  } catch {
    // Not JSON: the assertion on `error` below says so.
  }
  return { status: res.status, headers: res.headers, error: json.error, text }
}

interface RawAnswer {
  readonly status: number
  readonly head: string
  /** The body, when it is JSON in the error shape (whatever else it is, undefined). */
  readonly json:
    { error: { message: string; type: string; param: string | null; code: string | null } } | undefined
}

/** One request over a raw socket, for what fetch would not send (a Host of our choosing, dot segments). */
export async function raw(url: string, request: string): Promise<RawAnswer> {
  const { port, hostname } = new URL(url)
  const text = await new Promise<string>((resolve, reject) => {
    let data = ''
    const socket = connect(Number(port), hostname, () => socket.write(request))
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => (data += d))
    socket.on('end', () => resolve(data))
    socket.on('close', () => resolve(data))
    socket.on('error', reject)
  })
  const [head = '', rest = ''] = text.split('\r\n\r\n', 2)
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
  let json: RawAnswer['json']
  try {
    json = JSON.parse(rest) as RawAnswer['json']
  } catch {
    json = undefined
  }
  return { status, head: head.slice(0, 200), json }
}

/** One metric sample's value, summed over samples whose labels include `labels`. */
export async function metric(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let total = 0
  for (const s of parseExposition(text)) {
    if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value
  }
  return total
}

/** Runs of slow-agent that ended cancelled: what a client hanging up should move. */
const cancelledSlowRuns = (url: string) =>
  metric(url, 'ark_agent_runs_total', { agent: 'default/slow-agent', outcome: 'cancelled' })

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 5000
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  assert.fail(`timed out waiting for ${what}`)
}

async function expectApiError(
  work: Promise<unknown>,
  status: number,
  check: (e: {
    readonly code: unknown
    readonly param: unknown
    readonly type: unknown
    readonly message: string
  }) => void,
): Promise<void> {
  try {
    await work
  } catch (err) {
    assert.ok(err instanceof OpenAI.APIError, `expected an OpenAI APIError, got ${String(err)}`)
    assert.equal(err.status, status, err.message)
    check(err)
    return
  }
  assert.fail(`expected HTTP ${String(status)}, the request succeeded`)
}

const PASSWORD = 'How do I reset my password?'

export const cases: readonly Case[] = [
  {
    name: 'GET /v1/models lists agents, teams and models in the OpenAI list shape',
    async run({ client }) {
      const ids: string[] = []
      for await (const m of client.models.list()) {
        assert.equal(m.object, 'model')
        ids.push(m.id)
      }
      for (const id of [
        'agent/support-agent',
        'agent/math-agent',
        'agent/busy-agent',
        'team/crew',
        'model/default',
        'model/slow',
      ]) {
        assert.ok(ids.includes(id), `${id} in ${ids.join(', ')}`)
      }
      const one = await client.models.retrieve('agent/support-agent')
      assert.equal(one.id, 'agent/support-agent')
      assert.equal(one.object, 'model')
      // Only the listed id: a chat request's other spellings (bare name, default namespace) are not model ids.
      await expectApiError(client.models.retrieve('support-agent'), 404, (e) =>
        assert.equal(e.code, 'model_not_found'),
      )
      await expectApiError(client.models.retrieve('agent/nobody'), 404, (e) =>
        assert.equal(e.code, 'model_not_found'),
      )
    },
  },
  {
    name: 'a completion from an agent: the whole answer, finish_reason stop, usage',
    async run({ client }) {
      const c = await client.chat.completions.create({
        model: 'agent/support-agent',
        messages: user(PASSWORD),
      })
      assert.equal(c.object, 'chat.completion')
      assert.match(c.id, /^chatcmpl-/)
      assert.equal(c.model, 'agent/support-agent')
      assert.equal(c.choices.length, 1)
      assert.equal(c.choices[0]?.message.role, 'assistant')
      assert.equal(c.choices[0].message.content, `You said: ${PASSWORD}`)
      assert.equal(c.choices[0].finish_reason, 'stop')
      const u = c.usage
      assert.ok(u !== undefined && u.prompt_tokens > 0 && u.completion_tokens > 0)
      assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens)
      // A bare agent name addresses the same agent.
      const bare = await client.chat.completions.create({ model: 'support-agent', messages: user(PASSWORD) })
      assert.equal(bare.choices[0]?.message.content, `You said: ${PASSWORD}`)
    },
  },
  {
    name: 'POST /mcp: an MCP host lists the agents as tools and calls one',
    async run({ url }) {
      const mcp = new Client({ name: 'gateway-suite', version: '1.0.0' })
      await mcp.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)))
      try {
        const { tools } = await mcp.listTools()
        assert.ok(
          tools.some((t) => t.name === 'support-agent'),
          tools.map((t) => t.name).join(', '),
        )
        const result = await mcp.callTool({ name: 'support-agent', arguments: { message: PASSWORD } })
        assert.deepEqual(result.content, [{ type: 'text', text: `You said: ${PASSWORD}` }])
      } finally {
        await mcp.close()
      }
    },
  },
  {
    name: 'POST /a2a/agent/<name>: an A2A client reads the card, sends, streams and reads the task back',
    async run({ url }) {
      const a2a = await new ClientFactory().createFromUrl(`${url}/a2a/agent/support-agent/`)
      const message = (text: string): SendMessageRequest => ({
        tenant: '',
        message: {
          messageId: crypto.randomUUID(),
          contextId: '',
          taskId: '',
          role: Role.ROLE_USER,
          parts: [
            { content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' },
          ],
          metadata: {},
          extensions: [],
          referenceTaskIds: [],
        },
        configuration: undefined,
        metadata: {},
      })
      const textOf = (task: Task) =>
        task.artifacts
          .flatMap((a) => a.parts)
          .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
          .join('')
      const task = (await a2a.sendMessage(message(PASSWORD))) as Task
      assert.equal(task.status?.state, TaskState.TASK_STATE_COMPLETED)
      assert.equal(textOf(task), `You said: ${PASSWORD}`)
      const states: (TaskState | undefined)[] = []
      for await (const e of a2a.sendMessageStream(message('streamed'))) {
        if (e.payload?.$case === 'statusUpdate') states.push(e.payload.value.status?.state)
      }
      assert.deepEqual(states, [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED])
      const read = await a2a.getTask({ tenant: '', id: task.id, historyLength: undefined })
      assert.equal(textOf(read), `You said: ${PASSWORD}`)
    },
  },
  {
    name: 'streaming: role first, content in order, finish_reason, the usage chunk, then [DONE]',
    async run({ client, url }) {
      const stream = await client.chat.completions.create({
        model: 'agent/support-agent',
        messages: user(PASSWORD),
        stream: true,
        stream_options: { include_usage: true },
      })
      const chunks = []
      for await (const chunk of stream) chunks.push(chunk)
      assert.ok(chunks.length >= 4, `${String(chunks.length)} chunks`)
      assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant')
      assert.equal(new Set(chunks.map((c) => c.id)).size, 1)
      assert.deepEqual(
        new Set(chunks.map((c) => `${c.object} ${c.model}`)),
        new Set(['chat.completion.chunk agent/support-agent']),
      )
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
      assert.equal(text, `You said: ${PASSWORD}`)
      const withChoices = chunks.filter((c) => c.choices.length > 0)
      assert.ok(withChoices.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null))
      assert.equal(withChoices.at(-1)?.choices[0]?.finish_reason, 'stop')
      const last = chunks.at(-1)
      assert.equal(last?.choices.length, 0)
      assert.ok(last.usage !== undefined && last.usage !== null && last.usage.total_tokens > 0)
      assert.ok(
        chunks.slice(0, -1).every((c) => c.usage === null),
        'usage is null on every other chunk',
      )

      // On the wire: SSE events separated by blank lines, ending with data: [DONE].
      const raw = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'agent/support-agent', messages: user('hi'), stream: true }),
      })
      assert.match(raw.headers.get('content-type') ?? '', /^text\/event-stream/)
      const body = await raw.text()
      assert.ok(body.endsWith('data: [DONE]\n\n'), body.slice(-80))
      const events = body.trimEnd().split('\n\n')
      assert.ok(events.every((e) => e.startsWith('data: ')))
      assert.ok(!body.includes('"usage"'), 'no usage field unless stream_options.include_usage')
    },
  },
  {
    name: 'the tool loop runs several iterations through calculator, a custom tool and an agent tool',
    async run({ client, url }) {
      const before = await metric(url, 'ark_tool_calls_total', { agent: 'default/math-agent', outcome: 'ok' })
      const c = await client.chat.completions.create({
        model: 'agent/math-agent',
        messages: user(
          [
            'calculator {"expression": "(2+3)*4"}',
            'calculator {"expression": "sqrt(16)"} and lookup {"key": "capital-of-france"}',
            'ask-support {"input": "where is my parcel?"}',
          ].join('\n'),
        ),
      })
      assert.equal(
        c.choices[0]?.message.content,
        'calculator: 20\ncalculator: 4\nlookup: Paris\nask-support: You said: where is my parcel?',
      )
      const after = await metric(url, 'ark_tool_calls_total', { agent: 'default/math-agent', outcome: 'ok' })
      assert.equal(after - before, 4)
      assert.ok((await metric(url, 'ark_agent_iterations_count', { agent: 'default/math-agent' })) >= 1)
    },
  },
  {
    name: 'tool failures and invalid arguments go back to the model, not to the caller',
    async run({ client, url }) {
      const c = await client.chat.completions.create({
        model: 'agent/math-agent',
        messages: user(
          [
            'calculator {"expression": "1/0"}',
            'calculator {"expr": 1}',
            'calculator {"expression": }',
            'lookup {"key": "nothing"}',
          ].join('\n'),
        ),
      })
      const lines = (c.choices[0]?.message.content ?? '').split('\n')
      assert.match(lines[0] ?? '', /^calculator: division by zero at column \d+/)
      assert.match(lines[1] ?? '', /invalid arguments for calculator: .*expression: is required/)
      assert.match(lines[1] ?? '', /expr: unknown field/)
      assert.match(lines[2] ?? '', /arguments of calculator are not valid JSON/)
      assert.equal(lines[3], 'lookup: no fact named nothing')
      assert.ok(
        (await metric(url, 'ark_tool_calls_total', { tool: 'calculator', outcome: 'invalid_arguments' })) >=
          2,
      )
      assert.ok((await metric(url, 'ark_tool_calls_total', { tool: 'lookup', outcome: 'error' })) >= 1)
    },
  },
  {
    name: 'terminate ends the run with its response',
    async run({ client }) {
      const c = await client.chat.completions.create({
        model: 'agent/math-agent',
        messages: user('terminate {"response": "done early"}\ncalculator {"expression": "1+1"}'),
      })
      assert.equal(c.choices[0]?.message.content, 'done early')
      assert.equal(c.choices[0].finish_reason, 'stop')
    },
  },
  {
    name: 'the iteration bound stops a model that never stops calling tools (422 max_iterations)',
    async run({ client }) {
      const lines = Array.from(
        { length: SUITE_LIMITS.maxIterations + 1 },
        (_, i) => `noop {"message": "${String(i)}"}`,
      )
      await expectApiError(
        client.chat.completions.create({ model: 'agent/math-agent', messages: user(lines.join('\n')) }),
        422,
        (e) => {
          assert.equal(e.code, 'max_iterations')
          assert.match(e.message, /did not finish within 5 iterations/)
        },
      )
    },
  },
  {
    name: 'an outputSchema answer is validated: a matching one passes, a wrong one is a clear 502',
    async run({ client }) {
      const ok = await client.chat.completions.create({
        model: 'agent/analyzer',
        messages: user('I love it'),
      })
      assert.deepEqual(JSON.parse(ok.choices[0]?.message.content ?? ''), {
        sentiment: 'positive',
        confidence: 0,
      })
      await expectApiError(
        client.chat.completions.create({
          model: 'agent/analyzer',
          messages: user('answer: {"sentiment": "great", "confidence": 2}'),
        }),
        502,
        (e) => {
          assert.equal(e.code, 'invalid_output')
          assert.match(e.message, /sentiment: must be one of "positive", "negative", "neutral"/)
          assert.match(e.message, /confidence: must be <= 1/)
        },
      )
    },
  },
  {
    name: 'prompt parameters: value, ConfigMap and query parameters (metadata) are templated',
    async run({ client }) {
      const c = await client.chat.completions.create({
        model: 'agent/dynamic-agent',
        messages: user('show: system'),
        metadata: { agent_name: 'Ada' },
      })
      assert.equal(
        c.choices[0]?.message.content,
        'Your name is Ada. You work in careful mode at expert level.',
      )
      await expectApiError(
        client.chat.completions.create({ model: 'agent/dynamic-agent', messages: user('show: system') }),
        400,
        (e) => {
          assert.equal(e.param, 'metadata.agent_name')
          assert.match(e.message, /needs the parameter "agent_name"/)
        },
      )
    },
  },
  {
    name: 'unknown model: 404 model_not_found; an unavailable agent: 503 with its reason; a team answers',
    async run({ client }) {
      await expectApiError(
        client.chat.completions.create({ model: 'agent/nobody', messages: user('hi') }),
        404,
        (e) => {
          assert.equal(e.code, 'model_not_found')
          assert.equal(e.param, 'model')
          assert.equal(e.type, 'invalid_request_error')
        },
      )
      await expectApiError(
        client.chat.completions.create({ model: 'agent/broken-agent', messages: user('hi') }),
        503,
        (e) => {
          assert.equal(e.code, 'ToolNotFound')
          assert.match(e.message, /not available: ToolNotFound: .*does-not-exist/)
        },
      )
      // A team is a target like an agent: its members take their turns, the last one answers.
      const team = await client.chat.completions.create({ model: 'team/crew', messages: user('hi') })
      assert.equal(team.model, 'team/crew')
      assert.equal(team.choices[0]?.message.content, 'You said: hi')
      await expectApiError(
        client.chat.completions.create({ model: 'team/nobody', messages: user('hi') }),
        404,
        (e) => assert.equal(e.code, 'model_not_found'),
      )
    },
  },
  {
    name: 'model/<name> calls the model directly: client tools and tool calls, streaming and not',
    async run({ client }) {
      const tools = [
        {
          type: 'function' as const,
          function: {
            name: 'get_time',
            parameters: { type: 'object', properties: { tz: { type: 'string' } } },
          },
        },
      ]
      const turn = await client.chat.completions.create({
        model: 'model/default',
        messages: user('get_time {"tz": "UTC"}'),
        tools,
      })
      const call = turn.choices[0]?.message.tool_calls?.[0]
      assert.equal(turn.choices[0]?.finish_reason, 'tool_calls')
      assert.equal(call?.type === 'function' ? call.function.name : undefined, 'get_time')
      assert.ok(call !== undefined)
      const stream = await client.chat.completions.create({
        model: 'model/default',
        messages: [
          ...user('get_time {"tz": "UTC"}'),
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: '12:00' },
        ],
        tools,
        stream: true,
        stream_options: { include_usage: true },
      })
      let text = ''
      let usage = 0
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? ''
        usage += chunk.usage?.total_tokens ?? 0
      }
      assert.equal(text, 'get_time: 12:00')
      assert.ok(usage > 0)
    },
  },
  {
    name: 'invalid JSON and schema errors: 400 with param naming the field',
    async run({ url }) {
      const bad = await post(url, '{"model": "agent/support-agent", "messages": [')
      assert.equal(bad.status, 400)
      assert.equal(bad.error?.code, 'invalid_json')
      assert.equal(bad.error.type, 'invalid_request_error')
      const cases: [unknown, string][] = [
        [{ model: 'agent/support-agent' }, 'messages'],
        [{ messages: user('hi') }, 'model'],
        [{ model: 'agent/support-agent', messages: [] }, 'messages'],
        [{ model: 'agent/support-agent', messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
        [
          { model: 'agent/support-agent', messages: [{ role: 'constructor', content: 'hi' }] },
          'messages[0].role',
        ],
        [{ model: 'agent/support-agent', messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
        [
          { model: 'agent/support-agent', messages: [{ role: 'tool', content: 'x' }] },
          'messages[0].tool_call_id',
        ],
        [{ model: 'agent/support-agent', messages: user('hi'), temperature: -1 }, 'temperature'],
        [{ model: 'agent/support-agent', messages: user('hi'), max_tokens: 1e20 }, 'max_tokens'],
        [{ model: 'agent/support-agent', messages: user('hi'), n: 2 }, 'n'],
        [{ model: 'agent/support-agent', messages: user('hi'), stream: 'yes' }, 'stream'],
        [{ model: 'agent/support-agent', messages: user('hi'), metadata: { k: 1 } }, 'metadata.k'],
        [{ model: 'agent/support-agent', messages: user('hi'), tools: [{ type: 'function' }] }, 'tools'],
        [[1, 2], ''],
      ]
      for (const [body, param] of cases) {
        const r = await post(url, JSON.stringify(body))
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`)
        assert.equal(r.error?.param ?? '', param, `${JSON.stringify(body)}: ${r.error?.message ?? r.text}`)
        assert.ok((r.error?.message.length ?? 0) > 10)
      }
    },
  },
  {
    name: 'body too large (413), wrong content type (415), wrong method (405), unknown route (404)',
    async run({ url }) {
      const big = JSON.stringify({
        model: 'agent/support-agent',
        messages: user('x'.repeat(SUITE_LIMITS.maxBodyBytes + 10)),
      })
      const tooBig = await post(url, big)
      assert.equal(tooBig.status, 413)
      assert.equal(tooBig.error?.code, 'request_too_large')
      const form = await post(url, 'model=agent/support-agent', {
        'content-type': 'application/x-www-form-urlencoded',
      })
      assert.equal(form.status, 415)
      assert.match(form.error?.message ?? '', /Content-Type must be application\/json/)
      const get = await fetch(`${url}/v1/chat/completions`)
      assert.equal(get.status, 405)
      assert.equal(get.headers.get('allow'), 'POST')
      assert.equal(((await get.json()) as { error: { code: string } }).error.code, 'method_not_allowed')
      const del = await fetch(`${url}/v1/models`, { method: 'DELETE' })
      assert.equal(del.status, 405)
      await del.body?.cancel()
      const nowhere = await fetch(`${url}/v2/anything`)
      assert.equal(nowhere.status, 404)
      assert.equal(((await nowhere.json()) as { error: { code: string } }).error.code, 'not_found')
    },
  },
  {
    name: 'bad input never crashes: 1 MB strings, deep nesting, invalid UTF-8, unknown fields, truncated bodies',
    async run({ url, client }) {
      const mb = await post(
        url,
        JSON.stringify({ model: 'agent/support-agent', messages: user('y'.repeat(1024 * 1024)) }),
      )
      assert.equal(mb.status, 200, mb.text.slice(0, 200))
      assert.ok(mb.text.length < 10_000, 'the mock echoes a bounded prefix')

      const depth = 100_000
      const deep = `{"model":"agent/support-agent","messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(depth)}${']'.repeat(depth)}}`
      const d = await post(url, deep)
      assert.equal(d.status, 400, d.text.slice(0, 200))
      const deepContent = `{"model":"agent/support-agent","messages":[{"role":"user","content":${'['.repeat(depth)}${']'.repeat(depth)}}]}`
      assert.equal((await post(url, deepContent)).status, 400)

      const bytes = new TextEncoder().encode(
        JSON.stringify({ model: 'agent/support-agent', messages: user('hi?') }),
      )
      const invalid = new Uint8Array(bytes)
      invalid[bytes.length - 6] = 0xff // inside the content string
      const u = await post(url, invalid)
      assert.equal(u.status, 400)
      assert.equal(u.error?.code, 'invalid_encoding')

      const parts = await post(
        url,
        JSON.stringify({
          model: 'agent/support-agent',
          messages: [
            { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
            {
              role: 'user',
              content: [
                { type: 'text', text: 'in ' },
                { type: 'text', text: 'parts' },
              ],
            },
          ],
        }),
      )
      assert.equal(parts.status, 200, parts.text)
      assert.match(parts.text, /You said: in parts/)

      const extra = await post(
        url,
        JSON.stringify({
          model: 'agent/support-agent',
          messages: user('hi'),
          frobnicate: { x: [1] },
          user: 'u-1',
        }),
      )
      assert.equal(extra.status, 200)

      // A client that promises 1000 bytes, sends 20 and hangs up.
      const { port, hostname } = new URL(url)
      await new Promise<void>((resolve) => {
        const socket = connect(Number(port), hostname, () => {
          socket.end(
            'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model": "agent/sup',
          )
        })
        socket.on('error', () => resolve())
        socket.on('close', () => resolve())
        socket.resume()
      })
      const models = await client.models.list()
      assert.ok(models.data.length > 0, 'the gateway still serves')
      const health = await fetch(`${url}/healthz`)
      assert.equal(health.status, 200)
      assert.equal(((await health.json()) as { status: string }).status, 'ok')
      assert.equal((await fetch(`${url}/readyz`)).status, 200)
    },
  },
  {
    name: 'hostile requests: foreign Host names, dot segments, bad percent-encoding, bodies not declared JSON',
    async run({ url }) {
      // DNS rebinding: a name that resolves to 127.0.0.1 but is not a loopback name is refused on loopback.
      for (const host of ['evil.example', 'evil.example:80', '127.0.0.1.evil.example']) {
        const res = await raw(url, `GET /v1/models HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
        assert.equal(res.status, 403, `${host}: ${res.head}`)
        assert.equal(res.json?.error.code, 'host_not_allowed')
        assert.match(res.json.error.message, /--allowed-hosts/)
      }
      // An empty Host: Node's adapter cannot build a URL from it (400), Deno's reaches the check (403).
      const empty = await raw(url, 'GET /v1/models HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n')
      assert.ok([400, 403].includes(empty.status), empty.head)
      assert.equal(typeof empty.json?.error.message, 'string', empty.head)
      for (const host of ['localhost', 'LOCALHOST:8080', '127.0.0.1:1', '[::1]:9', 'app.localhost']) {
        const res = await raw(url, `GET /healthz HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
        assert.equal(res.status, 200, `${host}: ${res.head}`)
      }
      // Dot segments would let a proxy rule for /v1/ reach /metrics: refused, not resolved.
      for (const path of [
        '/v1/%2e%2e/metrics',
        '/v1/%2E%2e/metrics',
        '/v1/../metrics',
        '/v1/./models',
        '/v1/.%2e/metrics',
      ]) {
        const res = await raw(url, `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`)
        assert.equal(res.status, 400, `${path}: ${res.head}`)
        assert.equal(res.json?.error.code, 'invalid_path', path)
      }
      const bad = await fetch(`${url}/v1/models/%zz`)
      assert.equal(bad.status, 400)
      const badBody = (await bad.json()) as { error: { code: string; param: string } }
      assert.equal(badBody.error.code, 'invalid_model_id')
      assert.equal(badBody.error.param, 'model')
      // A page can POST cross-site without a preflight only with a body that does not say it is JSON.
      const body = JSON.stringify({ model: 'agent/support-agent', messages: user('hi') })
      for (const type of [
        undefined,
        'text/plain',
        'text/plain;charset=UTF-8',
        'multipart/form-data; boundary=x',
      ]) {
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          ...(type === undefined ? {} : { headers: { 'content-type': type } }),
          body: type === undefined ? new Blob([body]) : body,
        })
        assert.equal(res.status, 415, String(type))
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unsupported_media_type')
      }
      // No CORS unless configured: a browser gets no permission to read answers from another origin.
      const preflight = await fetch(`${url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      })
      assert.equal(preflight.headers.get('access-control-allow-origin'), null)
      await preflight.body?.cancel()
    },
  },
  {
    name: 'a client that disconnects mid-stream cancels its run',
    async run({ url, client }) {
      const before = await cancelledSlowRuns(url)
      const words = Array.from({ length: 100 }, (_, i) => `w${String(i)}`).join(' ')
      const abort = new AbortController()
      const stream = await client.chat.completions.create(
        { model: 'agent/slow-agent', messages: user(`answer: ${words}`), stream: true },
        { signal: abort.signal },
      )
      let seen = ''
      try {
        for await (const chunk of stream) {
          seen += chunk.choices[0]?.delta.content ?? ''
          if (seen.length > 0) abort.abort()
        }
      } catch (err) {
        assert.ok(err instanceof Error && /abort/i.test(`${err.name} ${err.message}`), String(err))
      }
      assert.ok(seen.startsWith('w0'))
      await eventually(
        async () => (await cancelledSlowRuns(url)) === before + 1,
        'the run to be counted as cancelled',
      )
      assert.equal(await metric(url, 'ark_pool_in_flight', { pool: 'default/slow-agent' }), 0)
    },
  },
  {
    name: 'a full pool queue answers 429 with Retry-After; accepted work still completes',
    async run({ url }) {
      const client = clientFor(url, { maxRetries: 0 })
      const ask = () =>
        client.chat.completions.create({ model: 'agent/slow-agent', messages: user('answer: ok') })
      const results = await Promise.allSettled([ask(), ask(), ask()])
      const ok = results.filter((r) => r.status === 'fulfilled')
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
      assert.equal(ok.length, 2, 'one runs and one waits (concurrency 1, queue 1)')
      assert.equal(refused.length, 1)
      const e = refused[0]
      assert.ok(e instanceof OpenAI.RateLimitError, String(e))
      assert.equal(e.code, 'queue_full')
      assert.ok(Number(e.headers.get('retry-after')) >= 1)
      assert.ok((await metric(url, 'ark_pool_rejected_total', { pool: 'default/slow-agent' })) >= 1)
    },
  },
  {
    name: 'metrics parse and move as requests are served',
    async run({ url, client }) {
      const labels = {
        http_route: '/v1/chat/completions',
        ark_target: 'agent/busy-agent',
        http_response_status_code: '200',
      }
      const before = await metric(url, 'http_server_request_duration_seconds_count', labels)
      const tokensBefore = await metric(url, 'gen_ai_client_token_usage_count', {
        agent: 'default/busy-agent',
      })
      await client.chat.completions.create({ model: 'agent/busy-agent', messages: user('hello') })
      assert.equal(await metric(url, 'http_server_request_duration_seconds_count', labels), before + 1)
      assert.equal(
        await metric(url, 'gen_ai_client_token_usage_count', { agent: 'default/busy-agent' }),
        tokensBefore + 2,
      )
      assert.equal(await metric(url, 'ark_pool_concurrency', { pool: 'default/busy-agent' }), 2 * 3)
      assert.equal(
        await metric(url, 'ark_agent_runs_total', { agent: 'default/busy-agent', outcome: 'answer' }),
        1,
      )
      assert.equal(await metric(url, 'ark_resource_available', { kind: 'Agent', name: 'broken-agent' }), 0)
      assert.equal(await metric(url, 'ark_resource_available', { kind: 'Agent', name: 'busy-agent' }), 1)
      assert.ok(
        (await metric(url, 'gen_ai_client_operation_duration_seconds_count', {
          gen_ai_provider_name: 'mock',
        })) > 0,
      )
      const res = await fetch(`${url}/metrics`)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
      await res.body?.cancel()
    },
  },
  {
    name: "the dashboard's page and files: a content security policy, no framing, revalidated by etag",
    async run({ url }) {
      const page = await fetch(`${url}/ui`)
      assert.equal(page.status, 200)
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
      const csp = page.headers.get('content-security-policy') ?? ''
      assert.match(csp, /default-src 'none'/)
      assert.match(csp, /script-src 'self'/)
      assert.match(csp, /frame-ancestors 'none'/)
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff')
      assert.match(await page.text(), /<script type="module" src="\/ui\/app\.js">/)
      const script = await fetch(`${url}/ui/app.js`)
      assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/)
      const etag = script.headers.get('etag') ?? ''
      assert.match(await script.text(), /\/ui\/api\/state/)
      const again = await fetch(`${url}/ui/app.js`, { headers: { 'if-none-match': etag } })
      assert.equal(again.status, 304)
      const css = await fetch(`${url}/ui/style.css`)
      assert.match(css.headers.get('content-type') ?? '', /^text\/css/)
      await css.body?.cancel()
      const missing = await fetch(`${url}/ui/secrets.json`)
      assert.equal(missing.status, 404)
      assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found')
      const wrong = await fetch(`${url}/ui/api/state`, { method: 'DELETE' })
      assert.equal(wrong.status, 405)
      assert.equal(wrong.headers.get('allow'), 'GET')
      await wrong.body?.cancel()
    },
  },
  {
    name: 'GET /ui/api/state: agents with availability and reasons, pools, and the runs admitted, without their text',
    async run({ url, client }) {
      const secret = `dashboard-canary-${String(Date.now())}`
      await client.chat.completions.create({ model: 'agent/support-agent', messages: user(secret) })
      const res = await fetch(`${url}/ui/api/state`)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('cache-control'), 'no-store')
      const text = await res.text()
      // What was asked and answered is not shown to whoever reads the dashboard.
      assert.ok(!text.includes(secret), "a run's text leaked into the dashboard state")
      const state = JSON.parse(text) as {
        agents: {
          id: string
          available: { status: string; reason?: string; message?: string }
          tools: string[]
        }[]
        teams: { id: string; members: string[] }[]
        models: { id: string; provider: string }[]
        pools: { agent: string; concurrency: number; inFlight: number; queued: number }[]
        runs: { target: string; via?: string; status: string; outcome?: string; tokens?: { total: number } }[]
      }
      const math = state.agents.find((a) => a.id === 'agent/math-agent')
      assert.equal(math?.available.status, 'True')
      assert.ok(math.tools.includes('calculator'), math.tools.join(','))
      const broken = state.agents.find((a) => a.id === 'agent/broken-agent')
      assert.equal(broken?.available.status, 'False')
      assert.equal(broken.available.reason, 'ToolNotFound')
      assert.match(broken.available.message ?? '', /does-not-exist/)
      assert.ok(state.teams.some((t) => t.id === 'team/crew'))
      assert.ok(state.models.some((m) => m.id === 'model/default' && m.provider === 'mock'))
      const pool = state.pools.find((p) => p.agent === 'default/support-agent')
      assert.equal(pool?.concurrency, SUITE_LIMITS.poolConcurrency)
      const run = state.runs.find((r) => r.target === 'agent/support-agent' && r.via === 'openai')
      assert.equal(run?.status, 'succeeded')
      assert.equal(run.outcome, 'answer')
      assert.ok((run.tokens?.total ?? 0) > 0)
    },
  },
  {
    name: 'POST /ui/api/chat streams the run: model calls, each tool call with its arguments and result, the answer',
    async run({ url }) {
      const chat = (body: unknown) =>
        fetch(`${url}/ui/api/chat`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      const res = await chat({
        model: 'agent/math-agent',
        messages: user('calculator {"expression": "6*7"}'),
      })
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
      const events = (await res.text())
        .split('\n\n')
        .filter((block) => block.startsWith('data: '))
        .map((block) => JSON.parse(block.slice(6)) as Record<string, unknown>)
      const types = events.map((e) => e.type)
      assert.deepEqual(
        types.filter((t) => t !== 'delta'),
        ['llm.start', 'llm.complete', 'tool.start', 'tool.complete', 'llm.start', 'llm.complete', 'done'],
      )
      const start = events.find((e) => e.type === 'tool.start')
      assert.equal(start?.tool, 'calculator')
      assert.equal(start.arguments, '{"expression": "6*7"}')
      const done = events.find((e) => e.type === 'tool.complete')
      assert.equal(done?.outcome, 'ok')
      assert.equal(done.result, '42')
      const answer = events
        .filter((e) => e.type === 'delta')
        .map((e) => String(e.text))
        .join('')
      assert.equal(answer, 'calculator: 42')
      assert.equal(events.at(-1)?.content, 'calculator: 42')
      // Bad input: the OpenAI face's errors, with the field named.
      const bad = await chat({ model: 'agent/math-agent', messages: [] })
      assert.equal(bad.status, 400)
      assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'messages')
      const unknown = await chat({ model: 'agent/nobody', messages: user('hi') })
      assert.equal(unknown.status, 404)
      assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'model_not_found')
      const broken = await chat({ model: 'agent/broken-agent', messages: user('hi') })
      assert.equal(broken.status, 503)
      assert.equal(((await broken.json()) as { error: { code: string } }).error.code, 'ToolNotFound')
      const notJson = await fetch(`${url}/ui/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"model":',
      })
      assert.equal(notJson.status, 400)
      assert.equal(((await notJson.json()) as { error: { code: string } }).error.code, 'invalid_json')
    },
  },
]

/**
 * Node only. Deno.serve (2.9.5) does not report a client that hangs up while a non-streaming response is
 * pending once the request had a body of more than a few hundred bytes (tested with a bare Hono app): the
 * run then finishes and its answer is dropped. Streaming requests are cancelled on both runtimes (above).
 */
export const nodeOnlyCases: readonly Case[] = [
  {
    name: "what Node's parser refuses gets a JSON error body too (431, CL+TE, bad chunks, 417)",
    async run({ url }) {
      const cases: [string, number, string][] = [
        [
          `GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
          431,
          'headers_too_large',
        ],
        [
          'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
          400,
          'invalid_framing',
        ],
        [
          'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
          400,
          'invalid_framing',
        ],
        [
          'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\nexpect: teapot\r\n\r\n{}',
          417,
          'expectation_failed',
        ],
        ['GARBAGE\r\n\r\n', 400, 'bad_request'],
      ]
      for (const [request, status, code] of cases) {
        const res = await raw(url, request)
        assert.equal(res.status, status, `${request.slice(0, 60)}: ${res.head}`)
        assert.equal(res.json?.error.code, code, res.head)
        assert.equal(typeof res.json.error.message, 'string')
      }
    },
  },
  {
    name: 'a client that hangs up mid-body is counted as 499, never as a server error',
    async run({ url }) {
      const count = (status: string) =>
        metric(url, 'http_server_request_duration_seconds_count', {
          http_route: '/v1/chat/completions',
          http_response_status_code: status,
        })
      const before = await count('499')
      const { port, hostname } = new URL(url)
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model": "agent/sup',
        )
      })
      socket.on('error', () => {})
      await new Promise((r) => setTimeout(r, 50))
      socket.destroy()
      await eventually(async () => (await count('499')) === before + 1, 'the hang-up to be counted as 499')
      assert.equal(await count('500'), 0)
    },
  },
  {
    name: 'a client that hangs up on a non-streaming request cancels its run too',
    async run({ url }) {
      const before = await cancelledSlowRuns(url)
      const words = Array.from({ length: 100 }, (_, i) => `w${String(i)}`).join(' ')
      const body = JSON.stringify({ model: 'agent/slow-agent', messages: user(`answer: ${words}`) })
      // A raw socket, so that the hang-up is a closed connection whatever the runtime's fetch pools do.
      const { port, hostname } = new URL(url)
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\n\r\n${body}`,
        )
      })
      socket.on('error', () => {})
      // 100 words at 30 ms each: hang up while the model is still writing.
      await eventually(
        async () => (await metric(url, 'ark_pool_in_flight', { pool: 'default/slow-agent' })) === 1,
        'the task to start',
      )
      socket.destroy()
      await eventually(
        async () => (await cancelledSlowRuns(url)) === before + 1,
        'the run to be counted as cancelled',
      )
    },
  },
]
