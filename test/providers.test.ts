/**
 * Real providers end to end: agents on OpenAI, Azure OpenAI, Anthropic and ArkAgent model ids, and direct
 * `model/<name>` calls, through the gateway (called with the `openai` client) to local fake upstreams that
 * the real SDKs talk to over HTTP. Keys come from Secrets and rotate without a restart; a missing Secret or a
 * revoked key makes the Model and its agents unavailable with the reason; upstream failures reach the client
 * in OpenAI's shape, never with a key in them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedded } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import type { ServeHandle } from '../gateway/index.ts'
import { createLogger, serve } from '../gateway/index.ts'
import type { FakeUpstream as FakeAnthropic } from './fakes/anthropic-upstream.ts'
import { startFakeAnthropic } from './fakes/anthropic-upstream.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'

const KEY_1 = 'sk-ark-test-first-key-0123456789'
const KEY_2 = 'sk-ark-test-second-key-9876543210'
const AZURE_KEY = 'azure-test-key-abcdefabcdef'
const ANTHROPIC_KEY = 'sk-ant-test-key-0123456789abcdef'
const ENV_KEY = 'sk-ark-test-env-key-5555555555'
const SECRETS = [KEY_1, KEY_2, AZURE_KEY, ANTHROPIC_KEY, ENV_KEY]

let openai: FakeUpstream
let anthropic: FakeAnthropic
let dir: string
let system: Embedded
let server: ServeHandle
let client: OpenAI
const logs: string[] = []

function manifests(openaiKey: string): string {
  return `
apiVersion: v1
kind: Secret
metadata: { name: llm-keys }
stringData: { openai: ${openaiKey}, azure: ${AZURE_KEY}, anthropic: ${ANTHROPIC_KEY} }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: gpt }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${openai.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: llm-keys, key: openai } } }
      headers: [{ name: X-Team, value: { value: platform } }]
      properties: { temperature: { value: "0.2" } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: azure-gpt }
spec:
  provider: azure
  model: { value: gpt-4o-deploy }
  pollInterval: 1h
  config:
    azure:
      baseUrl: { value: "${openai.origin}" }
      apiKey: { valueFrom: { secretKeyRef: { name: llm-keys, key: azure } } }
      apiVersion: { value: "2024-10-21" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: claude }
spec:
  provider: anthropic
  model: { value: claude-opus-4-7 }
  pollInterval: 1h
  config:
    anthropic:
      baseUrl: { value: "${anthropic.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: llm-keys, key: anthropic } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: lost-key }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${openai.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: no-such-secret, key: openai } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: missing-model }
spec:
  provider: openai
  model: { value: missing-gpt }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${openai.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: llm-keys, key: openai } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: keyless-cloud }
spec:
  provider: azure
  model: { value: gpt-4o-deploy }
  pollInterval: 1h
  config:
    azure:
      baseUrl: { value: "${openai.origin}" }
---
${['gpt', 'azure-gpt', 'claude', 'lost-key', 'missing-model', 'keyless-cloud']
  .map(
    (m) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: calc-on-${m} }
spec:
  prompt: You compute with the calculator.
  modelRef: { name: ${m} }
  tools:
    - { type: built-in, name: calculator }
---
`,
  )
  .join('')}apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: reporter }
spec:
  prompt: Report as JSON.
  modelRef: { name: gpt }
  outputSchema:
    type: object
    required: [city, temperature]
    properties:
      city: { type: string }
      temperature: { type: number }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: ark-gpt }
spec:
  model: gpt-4o
  systemPromptRef: { configMapKeyRef: { name: prompts, key: system.txt } }
  limits: { maxTokensPerCall: 400, timeoutSeconds: 2 }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: ark-claude }
spec:
  model: claude-haiku-4-5
  systemPrompt: You are brief.
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: single }
spec:
  model: gpt-4o
  systemPrompt: One task at a time.
  replicas: 1
  limits: { maxConcurrentTasks: 1 }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: prompts }
data: { system.txt: "You are the ArkAgent prompt from a ConfigMap." }
`
}

const user = (content: string) => [{ role: 'user' as const, content }]

async function writeManifests(openaiKey: string): Promise<void> {
  await writeFile(join(dir, 'all.yaml'), manifests(openaiKey))
}

function condition(key: string, type: string) {
  return system.controlPlane.store.status(key)?.conditions.find((c) => c.type === type)
}

/** Rewrites the Secret with this OpenAI key, reloads, and waits for the reconciles and probes it causes. */
async function putKeyInSecret(key: string): Promise<void> {
  await writeManifests(key)
  await system.controlPlane.refresh()
  await settled()
}

/** Waits for reconciles and probes to settle. */
async function settled(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await system.probes?.idle()
    await system.controlPlane.settled()
  }
}

/** Reads a stream to its end; the chunks, for streams whose end is what matters. */
async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const chunks: T[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return chunks
}

async function apiError(work: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await work
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err
    throw err
  }
  throw new Error('expected an API error, the request succeeded')
}

beforeAll(async () => {
  openai = await startFakeOpenAI({ keys: [KEY_1, AZURE_KEY, ENV_KEY] })
  anthropic = await startFakeAnthropic({ keys: [ANTHROPIC_KEY] })
  dir = await mkdtemp(join(tmpdir(), 'ark-providers-'))
  await writeManifests(KEY_1)
  system = await startEmbedded({
    manifests: dir,
    watch: false,
    log: createLogger('test', (line) => logs.push(line)),
    providers: {
      env: {
        OPENAI_BASE_URL: openai.url,
        OPENAI_API_KEY: ENV_KEY,
        ANTHROPIC_BASE_URL: anthropic.url,
        ANTHROPIC_API_KEY: ANTHROPIC_KEY,
      },
      withoutKey: 'unavailable',
      timeoutMs: 5000,
      maxRetries: 2,
    },
    probeIntervalSeconds: 3600,
    // Nothing waits: a pool at its concurrency refuses at once (the maxConcurrentTasks test).
    maxQueued: 0,
  })
  const lane = system.gateway.lane
  server = await serve(system.gateway.fetch, {
    host: '127.0.0.1',
    port: 0,
    ...(lane === undefined ? {} : { lane }),
  })
  client = new OpenAI({
    apiKey: 'unused',
    baseURL: `http://127.0.0.1:${String(server.port)}/v1`,
    maxRetries: 0,
  })
  await settled()
})

afterAll(async () => {
  await server.close()
  await system.close()
  await openai.close()
  await anthropic.close()
  await rm(dir, { recursive: true, force: true })
})

describe('agents on real providers', () => {
  const TOOL_LOOP = 'calculator {"expression": "6*7"}\ncalculator {"expression": "2+3"}'

  it.each(['gpt', 'azure-gpt', 'claude'])(
    'an agent on %s runs a multi-step tool loop, streaming and not',
    async (model) => {
      const done = await client.chat.completions.create({
        model: `agent/calc-on-${model}`,
        messages: user(TOOL_LOOP),
      })
      expect(done.choices[0]?.message.content).toBe('calculator: 42\ncalculator: 5')
      expect(done.usage?.total_tokens).toBeGreaterThan(0)

      const stream = await client.chat.completions.create({
        model: `agent/calc-on-${model}`,
        messages: user(TOOL_LOOP),
        stream: true,
      })
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      expect(text).toBe('calculator: 42\ncalculator: 5')
    },
  )

  it('sends the Model’s key, headers and properties upstream, and tool results with their ids', async () => {
    const before = openai.calls.length
    await client.chat.completions.create({ model: 'agent/calc-on-gpt', messages: user(TOOL_LOOP) })
    const calls = openai.calls.slice(before).filter((c) => c.path.endsWith('/chat/completions'))
    expect(calls).toHaveLength(3)
    const first = calls[0]!
    expect(first.headers.authorization).toBe(`Bearer ${KEY_1}`)
    expect(first.headers['x-team']).toBe('platform')
    const body = first.body as { temperature: number; messages: { role: string; content: string }[] }
    expect(body.temperature).toBe(0.2)
    expect(body.messages[0]).toEqual({ role: 'system', content: 'You compute with the calculator.' })
    const last = calls[2]!.body as { messages: { role: string; tool_call_id?: string }[] }
    const toolMessages = last.messages.filter((m) => m.role === 'tool')
    expect(toolMessages.map((m) => m.tool_call_id)).toHaveLength(2)
  })

  it('Azure gets its api-key header and the deployment in the path', async () => {
    const before = openai.calls.length
    await client.chat.completions.create({ model: 'agent/calc-on-azure-gpt', messages: user('hello') })
    const call = openai.calls.slice(before).find((c) => c.path.includes('/deployments/'))
    expect(call?.path).toBe('/openai/deployments/gpt-4o-deploy/chat/completions')
    expect(call?.headers['api-key']).toBe(AZURE_KEY)
    expect(call?.query['api-version']).toBe('2024-10-21')
  })

  it('an ArkAgent model id picks its provider: gpt-4o → OpenAI (OPENAI_BASE_URL), claude-* → Anthropic', async () => {
    const before = openai.calls.length
    const gpt = await client.chat.completions.create({
      model: 'agent/ark-gpt',
      messages: user('show: system'),
    })
    // systemPromptRef: the prompt is read from the ConfigMap.
    expect(gpt.choices[0]?.message.content).toBe('You are the ArkAgent prompt from a ConfigMap.')
    const call = openai.calls.slice(before).find((c) => c.path === '/v1/chat/completions')
    expect(call?.headers.authorization).toBe(`Bearer ${ENV_KEY}`)
    expect((call?.body as { model: string }).model).toBe('gpt-4o')

    const beforeA = anthropic.calls.length
    const claude = await client.chat.completions.create({ model: 'agent/ark-claude', messages: user('hi') })
    expect(claude.choices[0]?.message.content).toBe('You said: hi')
    const a = anthropic.calls.slice(beforeA).find((c) => c.path === '/v1/messages')
    expect((a?.body as { model: string; system: unknown }).model).toBe('claude-haiku-4-5')
  })

  it('outputSchema goes upstream as response_format; a wrong answer is corrected once, then a clear 502', async () => {
    const before = openai.calls.length
    const ok = await client.chat.completions.create({ model: 'agent/reporter', messages: user('weather?') })
    expect(JSON.parse(ok.choices[0]?.message.content ?? '')).toEqual({ city: '', temperature: 0 })
    const sent = openai.calls.slice(before).find((c) => c.path === '/v1/chat/completions')?.body as {
      response_format: { type: string; json_schema: { schema: unknown } }
    }
    expect(sent.response_format.type).toBe('json_schema')
    expect(sent.response_format.json_schema.schema).toMatchObject({ required: ['city', 'temperature'] })

    const wrong = openai.calls.length
    const err = await apiError(
      client.chat.completions.create({
        model: 'agent/reporter',
        messages: user('answer: {"city": 1}'),
      }),
    )
    expect(err.status).toBe(502)
    expect(err.code).toBe('invalid_output')
    expect(err.message).toContain('city: must be a string')
    // The first answer and one corrective turn.
    expect(openai.calls.slice(wrong).filter((c) => c.path === '/v1/chat/completions')).toHaveLength(2)
  })
})

describe('limits', () => {
  it('maxTokensPerCall caps the reply upstream and fails a call that used more, with token_limit_exceeded', async () => {
    const before = openai.calls.length
    await client.chat.completions.create({ model: 'agent/ark-gpt', messages: user('hello') })
    const sent = openai.calls.slice(before).find((c) => c.path === '/v1/chat/completions')?.body as {
      max_tokens?: number
      max_completion_tokens?: number
    }
    const cap = sent.max_tokens ?? sent.max_completion_tokens
    expect(cap).toBeGreaterThan(0)
    expect(cap).toBeLessThan(400)

    // The fake reports one token per four characters: 2,000 characters of question are about 500 tokens.
    const err = await apiError(
      client.chat.completions.create({ model: 'agent/ark-gpt', messages: user('x'.repeat(2000)) }),
    )
    expect(err.status).toBe(422)
    expect(err.code).toBe('token_limit_exceeded')
    expect(err.message).toContain('limits.maxTokensPerCall (400)')
  })

  it('timeoutSeconds abandons the task with 504 and aborts the upstream request', async () => {
    openai.next({ hang: true })
    const before = openai.calls.length
    const err = await apiError(
      client.chat.completions.create({ model: 'agent/ark-gpt', messages: user('hi') }),
    )
    expect(err.status).toBe(504)
    expect(err.code).toBe('timeout')
    await expect.poll(() => openai.calls.slice(before).some((c) => c.closedEarly)).toBe(true)
  })

  it('replicas × maxConcurrentTasks bounds the tasks at once; one more is a 429 queue_full', async () => {
    // The first task holds the only slot until its client lets go.
    openai.next({ hang: true })
    const before = openai.calls.length
    const holder = new AbortController()
    const first = client.chat.completions.create(
      { model: 'agent/single', messages: user('slow one') },
      { signal: holder.signal },
    )
    await expect.poll(() => openai.calls.length).toBeGreaterThan(before)
    const err = await apiError(
      client.chat.completions.create({ model: 'agent/single', messages: user('two') }),
    )
    expect(err.status).toBe(429)
    expect(err.code).toBe('queue_full')
    expect(err.message).toContain('1 tasks running')
    holder.abort()
    await expect(first).rejects.toThrow()
    // The slot is free again.
    await expect
      .poll(async () => {
        try {
          return (await client.chat.completions.create({ model: 'agent/single', messages: user('three') }))
            .choices[0]?.message.content
        } catch {
          return 'busy'
        }
      })
      .toBe('You said: three')
  })

  it('a client that goes away aborts the upstream request', async () => {
    openai.next({ hang: true })
    const before = openai.calls.length
    const controller = new AbortController()
    const pending = client.chat.completions.create(
      { model: 'agent/calc-on-gpt', messages: user('hi') },
      { signal: controller.signal },
    )
    await expect.poll(() => openai.calls.length).toBeGreaterThan(before)
    controller.abort()
    await expect(pending).rejects.toThrow()
    await expect.poll(() => openai.calls.slice(before).some((c) => c.closedEarly)).toBe(true)
  })
})

describe('upstream failures', () => {
  it('429 with Retry-After is retried by the provider and the agent answers', async () => {
    openai.next({ status: 429, headers: { 'retry-after-ms': '20' } })
    const before = openai.calls.length
    const done = await client.chat.completions.create({ model: 'agent/calc-on-gpt', messages: user('hi') })
    expect(done.choices[0]?.message.content).toBe('You said: hi')
    expect(openai.calls.slice(before).filter((c) => c.path === '/v1/chat/completions')).toHaveLength(2)
  })

  it('a 500 that persists fails the run with a 502 naming the upstream status, after the retries', async () => {
    const fail = { status: 500, headers: { 'retry-after-ms': '10' } }
    openai.next(fail, fail, fail)
    const err = await apiError(
      client.chat.completions.create({ model: 'agent/calc-on-gpt', messages: user('x') }),
    )
    expect(err.status).toBe(502)
    expect(err.message).toMatch(/model gpt-4o \(openai\) failed: 500/)
  })

  it('a malformed upstream stream ends the agent stream with an error the client parses; the process survives', async () => {
    openai.next({ brokenStream: 'malformed', afterChunks: 1 })
    const stream = await client.chat.completions.create({
      model: 'agent/calc-on-gpt',
      messages: user('hello there'),
      stream: true,
    })
    const err = await apiError(drain(stream))
    expect(err.message).toMatch(/could not be read/)
    const after = await client.chat.completions.create({ model: 'agent/calc-on-gpt', messages: user('ok?') })
    expect(after.choices[0]?.message.content).toBe('You said: ok?')
  })
})

describe('direct model calls: model/<name>', () => {
  it('forwards to an OpenAI upstream with its key, streaming and not, client tools passed through', async () => {
    const before = openai.calls.length
    const done = await client.chat.completions.create({
      model: 'model/gpt',
      messages: user('get_weather {"city": "Oslo"}'),
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
        },
      ],
      temperature: 0.5,
    })
    expect(done.choices[0]?.finish_reason).toBe('tool_calls')
    expect(done.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      type: 'function',
      function: { name: 'get_weather', arguments: '{"city": "Oslo"}' },
    })
    const sent = openai.calls.at(-1)
    expect(openai.calls.length).toBe(before + 1)
    expect(sent?.headers.authorization).toBe(`Bearer ${KEY_1}`)
    // The client's own choice wins over the Model's property; the model is the upstream id.
    expect(sent?.body).toMatchObject({ model: 'gpt-4o', temperature: 0.5 })

    const stream = await client.chat.completions.create({
      model: 'model/gpt',
      messages: user('stream this please'),
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    let usage = 0
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      usage += chunk.usage?.total_tokens ?? 0
    }
    expect(text).toBe('You said: stream this please')
    expect(usage).toBeGreaterThan(0)
  })

  it('passes response_format through', async () => {
    const done = await client.chat.completions.create({
      model: 'model/gpt',
      messages: user('give me json'),
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'n',
          schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
        },
      },
    })
    expect(JSON.parse(done.choices[0]?.message.content ?? '')).toEqual({ n: 0 })
  })

  it('maps to Anthropic: tools and tool calls both ways, stream chunks in OpenAI’s format', async () => {
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'lookup', parameters: { type: 'object', properties: { key: { type: 'string' } } } },
      },
    ]
    const first = await client.chat.completions.create({
      model: 'model/claude',
      messages: user('lookup {"key": "k1"}'),
      tools,
    })
    const call = first.choices[0]?.message.tool_calls?.[0]
    expect(first.choices[0]?.finish_reason).toBe('tool_calls')
    expect(call).toMatchObject({ function: { name: 'lookup', arguments: '{"key":"k1"}' } })

    const stream = await client.chat.completions.create({
      model: 'model/claude',
      messages: [
        ...user('lookup {"key": "k1"}'),
        { role: 'assistant', content: null, tool_calls: [call!] },
        { role: 'tool', tool_call_id: call!.id, content: 'v1' },
      ],
      tools,
      stream: true,
    })
    let text = ''
    let finish: string | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    expect(text).toBe('lookup: v1')
    expect(finish).toBe('stop')
  })

  it('an upstream 401 reaches the client as a 401 that does not echo the key', async () => {
    openai.next({
      status: 401,
      body: {
        error: {
          message: `Incorrect API key provided: ${KEY_1}`,
          type: 'invalid_request_error',
          code: 'invalid_api_key',
          param: null,
        },
      },
    })
    const err = await apiError(client.chat.completions.create({ model: 'model/gpt', messages: user('hi') }))
    expect(err.status).toBe(401)
    expect(err.code).toBe('invalid_api_key')
    expect(err.message).toContain('Incorrect API key provided: [REDACTED]')
    for (const s of SECRETS) expect(JSON.stringify(err.error)).not.toContain(s)
  })

  it('a malformed or cut upstream stream ends the client stream with an error event', async () => {
    for (const broken of ['malformed', 'cut'] as const) {
      openai.next({ brokenStream: broken, afterChunks: 2 })
      const stream = await client.chat.completions.create({
        model: 'model/gpt',
        messages: user('one two three four'),
        stream: true,
      })
      const err = await apiError(drain(stream))
      expect(err.message).toMatch(/the upstream stream broke/)
    }
    const after = await client.chat.completions.create({ model: 'model/gpt', messages: user('still up?') })
    expect(after.choices[0]?.message.content).toBe('You said: still up?')
  })

  it('an upstream answer too large to hold is a 502 that says so; the process goes on', async () => {
    openai.next({ status: 200, body: { choices: [], padding: 'x'.repeat(17 * 1024 * 1024) } })
    const err = await apiError(client.chat.completions.create({ model: 'model/gpt', messages: user('big') }))
    expect(err.status).toBe(502)
    expect(err.code).toBe('bad_upstream_response')
    expect(err.message).toMatch(/larger than 16777216 bytes/)
    const after = await client.chat.completions.create({ model: 'model/gpt', messages: user('still up?') })
    expect(after.choices[0]?.message.content).toBe('You said: still up?')
  })

  it('bad input is refused before anything goes upstream, in OpenAI’s shape', async () => {
    const before = openai.calls.length
    const err = await apiError(client.chat.completions.create({ model: 'model/gpt', messages: [] }))
    expect(err.status).toBe(400)
    expect(err.param).toBe('messages')
    const bad = await apiError(
      client.chat.completions.create({
        model: 'model/claude',
        messages: user('x'),
        tools: [{ type: 'function', function: { name: 'has spaces', parameters: {} } }],
      }),
    )
    expect(bad.status).toBe(400)
    expect(bad.param).toBe('tools[0].function.name')
    expect(openai.calls.length).toBe(before)
  })
})

describe('availability, probes and Secrets', () => {
  it('probes set ModelReachable and the ARK dialect shows ModelAvailable', () => {
    expect(condition('Model/default/gpt', 'ModelReachable')).toMatchObject({
      status: 'True',
      reason: 'ProbeSucceeded',
    })
    const dialect = system.controlPlane.store.dialectStatus('Model/default/gpt') as {
      conditions: { type: string; status: string }[]
    }
    expect(dialect.conditions.find((c) => c.type === 'ModelAvailable')?.status).toBe('True')
    expect(condition('Model/default/claude', 'ModelReachable')?.status).toBe('True')
    expect(condition('Agent/default/ark-gpt', 'ModelReachable')?.status).toBe('True')
  })

  it('a missing Secret makes the Model and its agents unavailable with SecretNotFound', async () => {
    expect(condition('Model/default/lost-key', 'Available')).toMatchObject({
      status: 'False',
      reason: 'SecretNotFound',
    })
    expect(condition('Agent/default/calc-on-lost-key', 'Available')).toMatchObject({
      status: 'False',
      reason: 'ModelNotAvailable',
    })
    const err = await apiError(
      client.chat.completions.create({ model: 'agent/calc-on-lost-key', messages: user('hi') }),
    )
    expect(err.status).toBe(503)
    expect(err.code).toBe('ModelNotAvailable')
  })

  it('a model the upstream does not have is ModelNotFound; one without any key is MissingAPIKey', async () => {
    expect(condition('Model/default/missing-model', 'Available')).toMatchObject({
      status: 'False',
      reason: 'ModelNotFound',
    })
    expect(condition('Model/default/keyless-cloud', 'Available')).toMatchObject({
      status: 'False',
      reason: 'MissingAPIKey',
    })
    const err = await apiError(
      client.chat.completions.create({ model: 'model/keyless-cloud', messages: user('x') }),
    )
    expect(err.status).toBe(503)
    expect(err.message).toContain('AZURE_OPENAI_API_KEY')
  })

  it('rotating the Secret switches the key without a restart; a revoked key turns Unauthorized, then recovers', async () => {
    // The upstream revokes the first key: the next probe (on the Secret change) sees it.
    openai.keys.delete(KEY_1)
    openai.keys.add(KEY_2)
    await putKeyInSecret(KEY_2)
    expect(condition('Model/default/gpt', 'Available')?.status).toBe('True')
    const before = openai.calls.length
    const done = await client.chat.completions.create({
      model: 'agent/calc-on-gpt',
      messages: user('new key'),
    })
    expect(done.choices[0]?.message.content).toBe('You said: new key')
    expect(openai.calls.slice(before).at(-1)?.headers.authorization).toBe(`Bearer ${KEY_2}`)

    // Now the key in the Secret is one the upstream refuses.
    await putKeyInSecret(KEY_1)
    expect(condition('Model/default/gpt', 'Available')).toMatchObject({
      status: 'False',
      reason: 'Unauthorized',
    })
    expect(condition('Agent/default/calc-on-gpt', 'Available')).toMatchObject({
      status: 'False',
      reason: 'ModelNotAvailable',
    })
    expect(condition('Model/default/gpt', 'ModelReachable')?.message).toContain('[REDACTED]')

    await putKeyInSecret(KEY_2)
    expect(condition('Agent/default/calc-on-gpt', 'Available')?.status).toBe('True')
  })

  it('no key ever reaches the logs, statuses or metrics', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${String(server.port)}/metrics`)).text()
    const statuses = JSON.stringify(
      [...system.controlPlane.store.list()].map((r) => system.controlPlane.store.status(r.key)),
    )
    for (const s of SECRETS) {
      expect(logs.join('\n')).not.toContain(s)
      expect(statuses).not.toContain(s)
      expect(metrics).not.toContain(s)
    }
    expect(logs.length).toBeGreaterThan(0)
  })
})
