// The fake is only worth its name if the real SDK cannot tell it from OpenAI: every check goes through it.
import OpenAI, { AzureOpenAI } from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { FakeUpstream } from './openai-upstream.ts'
import { startFakeOpenAI } from './openai-upstream.ts'

let fake: FakeUpstream
let client: OpenAI

beforeAll(async () => {
  fake = await startFakeOpenAI()
  // logLevel off: the SDK logs the malformed chunk it is made to meet.
  client = new OpenAI({ apiKey: 'sk-test-key', baseURL: fake.url, maxRetries: 0, logLevel: 'off' })
})
afterAll(() => fake.close())
afterEach(() => {
  fake.calls.length = 0
  fake.keys.clear()
})

const calculator = {
  type: 'function',
  function: {
    name: 'calculator',
    parameters: { type: 'object', properties: { expression: { type: 'string' } } },
  },
} as const
const askForSum = 'calculator {"expression": "2+3"}'

describe('chat completions', () => {
  it('answers in the chat.completion shape', async () => {
    const done = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hello there' }],
    })
    expect(done).toMatchObject({ object: 'chat.completion', model: 'gpt-4o' })
    expect(done.choices[0]).toMatchObject({
      finish_reason: 'stop',
      message: { role: 'assistant', content: 'You said: hello there', refusal: null },
    })
    expect(done.usage!.total_tokens).toBe(done.usage!.prompt_tokens + done.usage!.completion_tokens)
    expect(fake.calls[0]).toMatchObject({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: 'Bearer sk-test-key' },
      body: { model: 'gpt-4o' },
      closedEarly: false,
    })
  })

  it('streams content deltas, a finish chunk and a usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'answer: one two three' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
    expect(text).toBe('one two three')
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBe(3)
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant')
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop')
    expect(chunks.at(-1)!.choices).toEqual([])
    expect(chunks.at(-1)!.usage!.completion_tokens).toBeGreaterThan(0)
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true)
  })

  it('streams tool calls that the SDK assembles from their fragments', async () => {
    const chunks: OpenAI.ChatCompletionChunk[] = []
    const stream = client.chat.completions
      .stream({ model: 'gpt-4o', messages: [{ role: 'user', content: askForSum }], tools: [calculator] })
      .on('chunk', (c) => chunks.push(c))
    const done = await stream.finalChatCompletion()
    expect(done.choices[0]!.finish_reason).toBe('tool_calls')
    expect(done.choices[0]!.message.tool_calls).toHaveLength(1)
    expect(done.choices[0]!.message.tool_calls![0]).toMatchObject({
      id: 'call_0_0',
      type: 'function',
      function: { name: 'calculator', arguments: '{"expression": "2+3"}' },
    })
    const argumentPieces = chunks.filter((c) => c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments)
    expect(argumentPieces.length).toBeGreaterThanOrEqual(2)
  })

  it('calls a tool, then answers from the tool result', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: askForSum }]
    const first = await client.chat.completions.create({ model: 'gpt-4o', messages, tools: [calculator] })
    const asked = first.choices[0]!.message
    expect(asked.tool_calls).toHaveLength(1)
    messages.push(asked, { role: 'tool', tool_call_id: asked.tool_calls![0]!.id, content: '5' })
    const second = await client.chat.completions.create({ model: 'gpt-4o', messages, tools: [calculator] })
    expect(second.choices[0]!.message.content).toBe('calculator: 5')

    // Like the real API, a tool result must answer a call.
    const orphan = client.chat.completions.create({
      model: 'gpt-4o',
      messages: [messages[0]!, { role: 'tool', tool_call_id: 'call_x', content: '5' }],
    })
    await expect(orphan).rejects.toMatchObject({ status: 400 })
  })

  it('answers JSON matching a json_schema response_format', async () => {
    const schema = {
      type: 'object',
      properties: { city: { type: 'string', minLength: 2 }, count: { type: 'integer', minimum: 3 } },
      required: ['city', 'count'],
    }
    const done = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'where?' }],
      response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } },
    })
    expect(JSON.parse(done.choices[0]!.message.content!)).toEqual({ city: 'xx', count: 3 })
  })

  it('refuses what the real API refuses', async () => {
    const post = (body: string) =>
      fetch(`${fake.url}/chat/completions`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
    const notJson = await post('{nope')
    expect(notJson.status).toBe(400)
    const empty = await post(JSON.stringify({ model: 'gpt-4o', messages: [] }))
    expect(await empty.json()).toMatchObject({ error: { param: 'messages', code: 'empty_array' } })
    const noModel = await post(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }))
    expect(noModel.status).toBe(400)
  })
})

describe('models', () => {
  it('lists, retrieves, and says model_not_found', async () => {
    const list = await client.models.list()
    expect(list.data.map((m) => m.id)).toContain('gpt-4o')
    expect(await client.models.retrieve('gpt-4o')).toMatchObject({ id: 'gpt-4o', object: 'model' })
    await expect(client.models.retrieve('missing-model')).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    })
  })
})

describe('scripted failures', () => {
  const ask = (c = client) =>
    c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
  let seen: OpenAI.ChatCompletionChunk[] = []
  const streamAll = async () => {
    seen = []
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'answer: a b c d e' }],
      stream: true,
    })
    for await (const chunk of stream) seen.push(chunk)
  }

  it('refuses a wrong key with a 401 that echoes it', async () => {
    fake.keys.add('sk-the-right-one')
    await expect(ask()).rejects.toMatchObject({
      status: 401,
      code: 'invalid_api_key',
      message: expect.stringContaining('Incorrect API key provided: sk-test-key') as unknown,
    })
  })

  it('answers 429 with retry-after-ms, which the SDK honours before retrying', async () => {
    fake.next({ status: 429, headers: { 'retry-after-ms': '10' } })
    const done = await ask(client.withOptions({ maxRetries: 2 }))
    expect(done.choices[0]!.message.content).toBe('You said: hi')
    expect(fake.calls).toHaveLength(2)
  })

  it('breaks streams: a malformed line, then a cut connection', async () => {
    fake.next({ brokenStream: 'malformed' }, { brokenStream: 'cut', afterChunks: 2 })
    await expect(streamAll()).rejects.toThrow(/malformed/)
    expect(seen).toHaveLength(1)
    await expect(streamAll()).rejects.toThrow(/terminated/)
    expect(seen).toHaveLength(2)
    expect(fake.calls.map((c) => c.closedEarly)).toEqual([false, false])
    // The overrides are spent: the default answer again (role chunk, five words, finish).
    await streamAll()
    expect(seen).toHaveLength(7)
  })

  it('hangs until the client goes away, and records that it did', async () => {
    fake.next({ hang: true })
    const controller = new AbortController()
    const asking = client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] },
      { signal: controller.signal },
    )
    await vi.waitFor(() => expect(fake.calls[0]?.body).toBeDefined())
    controller.abort()
    await expect(asking).rejects.toThrow()
    await vi.waitFor(() => expect(fake.calls[0]!.closedEarly).toBe(true))
  })
})

describe('Azure OpenAI', () => {
  it('serves deployments with the api-key header and api-version', async () => {
    fake.keys.add('azure-key')
    const azure = new AzureOpenAI({
      apiKey: 'azure-key',
      endpoint: fake.origin,
      apiVersion: '2024-10-21',
      deployment: 'my-gpt',
      maxRetries: 0,
    })
    const done = await azure.chat.completions.create({
      model: 'ignored',
      messages: [{ role: 'user', content: 'hello' }],
    })
    expect(done.model).toBe('my-gpt')
    expect(done.choices[0]!.message.content).toBe('You said: hello')
    expect(fake.calls[0]).toMatchObject({
      path: '/openai/deployments/my-gpt/chat/completions',
      query: { 'api-version': '2024-10-21' },
      headers: { 'api-key': 'azure-key' },
    })
    expect((await azure.models.list()).data.length).toBeGreaterThan(0)

    const noVersion = await fetch(`${fake.origin}/openai/deployments/my-gpt/chat/completions`, {
      method: 'POST',
      headers: { 'api-key': 'azure-key' },
      body: '{}',
    })
    expect(noVersion.status).toBe(404)
  })
})
