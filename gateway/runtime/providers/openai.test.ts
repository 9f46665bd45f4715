import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FakeUpstream } from '../../../test/fakes/openai-upstream.ts'
import { startFakeOpenAI } from '../../../test/fakes/openai-upstream.ts'
import type { CompletionRequest } from '../provider.ts'
import { createOpenAIProvider } from './openai.ts'

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeOpenAI()
})
afterAll(() => fake.close())

async function sentCap(properties: Record<string, string>, request: Partial<CompletionRequest>) {
  const provider = createOpenAIProvider({
    provider: 'openai',
    model: 'gpt-4o',
    baseUrl: fake.url,
    apiKey: 'sk-test-0123456789',
    headers: {},
    properties,
  })
  await provider.complete({
    messages: [{ role: 'user', content: 'hi' }],
    tools: [],
    signal: new AbortController().signal,
    ...request,
  })
  const body = fake.calls.at(-1)?.body as { max_tokens?: number; max_completion_tokens?: number }
  return body.max_tokens ?? body.max_completion_tokens
}

describe('openai provider: the reply cap', () => {
  it('sends a client’s max_tokens as it is', async () => {
    expect(await sentCap({ max_tokens: '1000' }, { maxTokens: 50 })).toBe(50)
  })

  it('bounds the Model’s own max_tokens by the token budget', async () => {
    expect(await sentCap({ max_tokens: '1000' }, { replyBudget: 300 })).toBe(300)
    expect(await sentCap({ max_tokens: '200' }, { replyBudget: 300 })).toBe(200)
  })

  it('sends a budget as the cap only when it is one models accept', async () => {
    expect(await sentCap({}, { replyBudget: 8000 })).toBe(8000)
    // 128k of budget left is more than gpt-4o's 16k output limit: no cap, the usage check still applies.
    expect(await sentCap({}, { replyBudget: 128_000 })).toBeUndefined()
  })
})

describe('openai provider: the agent settings', () => {
  const send = async (properties: Record<string, string>, request: Partial<CompletionRequest>) => {
    const provider = createOpenAIProvider({
      provider: 'openai',
      model: 'gpt-4o',
      baseUrl: fake.url,
      apiKey: 'sk-test-0123456789',
      headers: {},
      properties,
    })
    await provider.complete({
      messages: [{ role: 'user', content: 'Answer in JSON, please.' }],
      tools: [],
      signal: new AbortController().signal,
      ...request,
    })
    return fake.calls.at(-1)?.body as Record<string, unknown>
  }

  it('sends their temperature as a number, below the Model’s own and the caller’s', async () => {
    expect((await send({}, { defaults: { temperature: 0.3 } })).temperature).toBe(0.3)
    expect((await send({ temperature: '0.9' }, { defaults: { temperature: 0.3 } })).temperature).toBe(0.9)
    const both = await send(
      { temperature: '0.9' },
      { defaults: { temperature: 0.3 }, parameters: { temperature: 0 } },
    )
    expect(both.temperature).toBe(0)
    expect(await send({}, {})).not.toHaveProperty('temperature')
  })

  it('asks for a JSON object in JSON mode, unless an outputSchema or the Model says otherwise', async () => {
    expect((await send({}, { json: true })).response_format).toEqual({ type: 'json_object' })
    expect(await send({}, {})).not.toHaveProperty('response_format')
    const schema = { type: 'object', properties: { a: { type: 'string' } } }
    expect((await send({}, { json: true, outputSchema: schema })).response_format).toMatchObject({
      type: 'json_schema',
    })
    const own = await send({ response_format: '{"type":"text"}' }, { json: true })
    expect(own.response_format).toEqual({ type: 'text' })
  })
})
