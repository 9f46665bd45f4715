/**
 * ArkSettings (an ArkAgent's configRef) in the prompt and on every model call, seen where it matters: in the
 * request a real OpenAI SDK path sends to a local upstream. persona first, the prompt, the other fragments by
 * name, what outputFormat asks, outputRules last (ark-operator's order, blank lines between); temperature as a
 * number; JSON mode for structured-json. A change to the Settings prepares the agent again; a missing one
 * makes the agent unavailable and its runs say why.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { availabilityOf } from '../../controller/reconcile/availability.ts'
import { Catalog, ManifestStore } from '../../controller/store/index.ts'
import type { FakeUpstream } from '../../test/fakes/openai-upstream.ts'
import { startFakeOpenAI } from '../../test/fakes/openai-upstream.ts'
import { memorySource } from '../../test/manifests.ts'
import { AgentRuntime } from './agent-runtime.ts'
import { createMockProvider } from './providers/mock.ts'
import { createOpenAIProvider } from './providers/openai.ts'
import type { Task } from './task.ts'
import { BUILTIN_TOOLS } from './tools/builtin.ts'

const settings = (persona: string, extra = '') => `apiVersion: arkonis.dev/v1alpha1
kind: ArkSettings
metadata: { name: analyst-base }
spec:
  temperature: "0.3"
  outputFormat: structured-json
  promptFragments:
    persona: ${persona}
    outputRules: Always cite sources. Flag uncertainty explicitly.
    glossary: "ARR: annual recurring revenue."
    audience: Write for a finance team.${extra}
`

const agent = (configRef = 'analyst-base', model = 'gpt-4o') => `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: analyst }
spec:
  model: ${model}
  systemPrompt: Analyze the provided dataset and identify key trends.
  configRef: ${configRef}
`

const JSON_ASK =
  'Answer with one JSON object and nothing else: no text before or after it, no Markdown code fences.'

let fake: FakeUpstream
beforeAll(async () => {
  fake = await startFakeOpenAI()
})
afterAll(() => fake.close())

const closers: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function start(text: string, upstream: 'openai' | 'mock' = 'openai') {
  const source = memorySource(text)
  const store = new ManifestStore(source)
  await store.start()
  const catalog = new Catalog(store)
  const runtime = new AgentRuntime({
    catalog,
    // The ArkAgent's `model: gpt-4o` through the real OpenAI SDK path, to the local upstream.
    createProvider:
      upstream === 'mock'
        ? createMockProvider
        : (config) => createOpenAIProvider({ ...config, baseUrl: fake.url, apiKey: 'sk-test-0123456789' }),
    builtins: BUILTIN_TOOLS,
  })
  closers.push(
    async () => {
      catalog.close()
      await store.close()
    },
    () => runtime.close(),
  )
  // Edits arrive as one batch of changes, as a file saved in `ark dev` does.
  const edit = async (next: string) => {
    source.replace(next)
    await Promise.resolve()
  }
  return { catalog, runtime, edit }
}

let taskNumber = 0
const task = (content: string, stream = false): Task => ({
  id: `t-${String(++taskNumber)}`,
  agent: { namespace: 'default', name: 'analyst' },
  messages: [{ role: 'user', content }],
  parameters: {},
  stream,
  depth: 0,
})

const run = (runtime: AgentRuntime, t: Task) => runtime.run(t, { signal: new AbortController().signal })

/** The last chat completion the upstream received. */
function lastRequest(): { messages: { role: string; content: string }[]; [k: string]: unknown } {
  const call = fake.calls.filter((c) => c.path === '/v1/chat/completions').at(-1)
  return call?.body as { messages: { role: string; content: string }[] }
}

describe('ArkSettings in the prompt and the request', () => {
  it('persona first, the prompt, the other fragments by name, the JSON ask, outputRules last', async () => {
    const { runtime } = await start(`${settings('You are an expert analyst.')}---\n${agent()}`)
    const result = await run(runtime, task('show: system'))
    expect(result.outcome).toBe('answer')
    const expected = [
      'You are an expert analyst.',
      'Analyze the provided dataset and identify key trends.',
      'Write for a finance team.',
      'ARR: annual recurring revenue.',
      JSON_ASK,
      'Always cite sources. Flag uncertainty explicitly.',
    ].join('\n\n')
    const sent = lastRequest()
    expect(sent.messages[0]).toEqual({ role: 'system', content: expected })
    expect(sent.messages[1]).toEqual({ role: 'user', content: 'show: system' })
    // temperature "0.3" is a number on the wire; structured-json is OpenAI's JSON mode.
    expect(sent.temperature).toBe(0.3)
    expect(sent.response_format).toEqual({ type: 'json_object' })
    // The mock behind the upstream answers with the system prompt it was given.
    expect(result.content).toBe(expected)
  })

  it('sends them on every call of the loop, streamed or not', async () => {
    const { runtime } = await start(`${settings('You are an expert analyst.')}---\n${agent()}`)
    const before = fake.calls.length
    const result = await run(runtime, task('get_subtask_result {"id": "x"}\nanswer: {"done": true}', true))
    expect(result.outcome).toBe('answer')
    const calls = fake.calls.slice(before).filter((c) => c.path === '/v1/chat/completions')
    expect(calls).toHaveLength(2)
    for (const c of calls) {
      const body = c.body as Record<string, unknown>
      expect(body.stream).toBe(true)
      expect(body.temperature).toBe(0.3)
      expect(body.response_format).toEqual({ type: 'json_object' })
    }
  })

  it('a change to the Settings prepares the agent again, and the next run has it', async () => {
    const { runtime, catalog, edit } = await start(`${settings('You are an expert analyst.')}---\n${agent()}`)
    const analyst = () => catalog.get('Agent', { namespace: 'default', name: 'analyst' })!
    const first = await runtime.prepare(analyst())
    expect(await runtime.prepare(analyst())).toBe(first)
    await edit(`${settings('You are a careful auditor.')}---\n${agent()}`)
    const second = await runtime.prepare(analyst())
    expect(second).not.toBe(first)
    await run(runtime, task('show: system'))
    const system = lastRequest().messages[0]?.content ?? ''
    expect(system.startsWith('You are a careful auditor.\n\nAnalyze the provided dataset')).toBe(true)
    expect(system).not.toContain('expert analyst')
  })

  it.each([
    ['markdown', 'Format your answer in Markdown.'],
    ['plain', 'Answer in plain text, without Markdown formatting.'],
    ['yaml', undefined],
    ['constructor', undefined],
  ])('outputFormat %s asks for its format in the prompt, without JSON mode', async (format, ask) => {
    const text = `${settings('P.').replace('structured-json', format)}---\n${agent()}`
    const { runtime } = await start(text)
    await run(runtime, task('answer: ok'))
    const sent = lastRequest()
    expect(sent).not.toHaveProperty('response_format')
    const parts = sent.messages[0]?.content.split('\n\n') ?? []
    expect(parts.at(-1)).toBe('Always cite sources. Flag uncertainty explicitly.')
    if (ask === undefined) expect(parts).toHaveLength(5)
    else expect(parts.at(-2)).toBe(ask)
    expect(sent.messages[0]?.content).not.toContain('JSON')
  })

  it('settings without fragments leave the prompt as written; the persona is not a template', async () => {
    const plain = `apiVersion: arkonis.dev/v1alpha1
kind: ArkSettings
metadata: { name: analyst-base }
spec: { temperature: "1" }
---
${agent()}`
    const { runtime, edit } = await start(plain)
    await run(runtime, task('answer: ok'))
    expect(lastRequest().messages[0]?.content).toBe('Analyze the provided dataset and identify key trends.')
    expect(lastRequest().temperature).toBe(1)
    await edit(`${settings('"You are {{.name}}."')}---\n${agent()}`)
    await run(runtime, task('answer: ok'))
    expect(lastRequest().messages[0]?.content.startsWith('You are {{.name}}.\n\n')).toBe(true)
  })

  it('the mock model answers a JSON object in JSON mode (ark dev without a key)', async () => {
    const { runtime } = await start(`${settings('P.')}---\n${agent('analyst-base', 'mock')}`, 'mock')
    const result = await run(runtime, task('hello'))
    expect(JSON.parse(result.content ?? '')).toEqual({ answer: 'You said: hello' })
  })
})

describe('a missing ArkSettings', () => {
  it('makes the agent not Available, and its runs say why; it runs once the Settings exist', async () => {
    const { runtime, catalog, edit } = await start(agent('missing'))
    const analyst = () => catalog.get('Agent', { namespace: 'default', name: 'analyst' })!
    expect(availabilityOf(analyst(), catalog)).toMatchObject({
      status: 'False',
      reason: 'SettingsNotFound',
      message: 'settings: Settings default/missing not found',
    })
    const refused = await run(runtime, task('answer: ok'))
    expect(refused.outcome).toBe('error')
    expect(refused.error).toBe(
      'agent/analyst cannot run: settings (configRef): Settings default/missing not found',
    )
    await edit(
      `${settings('You are an expert analyst.').replace('analyst-base', 'missing')}---\n${agent('missing')}`,
    )
    expect(availabilityOf(analyst(), catalog)?.status).toBe('True')
    const result = await run(runtime, task('show: system'))
    expect(result.outcome).toBe('answer')
    expect(result.content?.startsWith('You are an expert analyst.\n\n')).toBe(true)
  })
})
