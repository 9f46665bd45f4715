/**
 * Conversations that remember, end to end: an agent and a team on a fake OpenAI upstream (driven through the
 * real SDK) whose recorded requests show what history each turn was sent; the conversation named by the
 * OpenAI request's `metadata.conversation_id`, an A2A contextId, and an MCP tool's `conversation_id`; an
 * ArkMemory `in-context` (this process), and an ARK Memory pointing at ARK's memory service (a stand-in
 * implementing its HTTP API). Unsupported and broken memories are refused with their reason.
 */
import type { Message, Task } from '@a2a-js/sdk'
import { Role } from '@a2a-js/sdk'
import { ClientFactory } from '@a2a-js/sdk/client'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { FakeMemoryService } from './fakes/ark-memory.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { RunningGateway } from './gateway-server.ts'
import { startGateway } from './gateway-server.ts'
import { clientFor } from './gateway-suite.ts'

const CANARY = 'memory-header-canary-5c1e'

function manifests(upstream: FakeUpstream, service: FakeMemoryService): string {
  const model = (ns: string) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: ${ns} }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config: { openai: { baseUrl: { value: "${upstream.url}" }, apiKey: { value: sk-test } } }`
  const agent = (name: string, ns: string, extra = '') => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: ${name}, namespace: ${ns} }
spec:
  prompt: I am ${name}.
${extra}`
  return [
    model('default'),
    // ARK: a Memory named default serves every run of its namespace that names a conversation.
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkMemory
metadata: { name: default }
spec: { backend: in-context }`,
    agent('recorder', 'default'),
    // On the in-process mock, whose usage counts 4 characters a token: what it was sent shows in prompt_tokens.
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: mock }
spec: { provider: mock, model: { value: mock-1 } }`,
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: brief }
spec:
  model: mock
  systemPrompt: Be brief.
  memoryRef: { name: default }
  limits: { maxTokensPerCall: 1000 }`,
    agent('tiny', 'default', '  outputSchema: { type: string }'),
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: duo }
spec: { strategy: sequential, members: [{ name: recorder, type: agent }, { name: tiny, type: agent }] }`,
    `apiVersion: v1
kind: Namespace
metadata: { name: ark-mem }`,
    model('ark-mem'),
    `apiVersion: v1
kind: Secret
metadata: { name: memory-key, namespace: ark-mem }
stringData: { key: ${CANARY} }`,
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Memory
metadata: { name: default, namespace: ark-mem }
spec:
  address: { value: "${service.url}" }
  headers: [{ name: X-Api-Key, value: { valueFrom: { secretKeyRef: { name: memory-key, key: key } } } }]`,
    agent('recorder', 'ark-mem'),
    `apiVersion: v1
kind: Namespace
metadata: { name: vectors }`,
    model('vectors'),
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkMemory
metadata: { name: vectors, namespace: vectors }
spec: { backend: vector-store, vectorStore: { provider: qdrant, endpoint: "http://127.0.0.1:1" } }`,
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: forgetful, namespace: vectors }
spec: { model: mock, systemPrompt: I forget., memoryRef: { name: vectors } }`,
  ].join('\n---\n')
}

let upstream: FakeUpstream
let service: FakeMemoryService
let dir: string
let gw: RunningGateway
let client: OpenAI

beforeAll(async () => {
  upstream = await startFakeOpenAI()
  service = new FakeMemoryService()
  await service.start()
  dir = await mkdtemp(join(tmpdir(), 'ark-memory-'))
  await writeFile(join(dir, 'all.yaml'), manifests(upstream, service))
  gw = await startGateway(dir, { poolConcurrency: 4, maxQueued: 16 })
  client = clientFor(gw.url)
})
afterAll(async () => {
  await gw.close()
  await upstream.close()
  await service.close()
  await rm(dir, { recursive: true, force: true })
})
beforeEach(() => {
  upstream.calls.length = 0
})

type Sent = { messages: { role: string; content: string | null }[] }
/** What the upstream was sent, call by call: role and text of each message. */
const sentTo = () =>
  upstream.calls
    .filter((c) => c.path.endsWith('/chat/completions'))
    .map((c) => (c.body as Sent).messages.map((m) => `${m.role}: ${m.content ?? ''}`))

async function ask(model: string, content: string, conversation?: string): Promise<string> {
  const completion = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content }],
    ...(conversation === undefined ? {} : { metadata: { conversation_id: conversation } }),
  })
  return completion.choices[0]?.message.content ?? ''
}

describe('conversations on the OpenAI API (metadata.conversation_id)', () => {
  it('a later turn is sent the earlier ones; another conversation, and a request without one, are not', async () => {
    const id = `c-${crypto.randomUUID()}`
    expect(await ask('agent/recorder', 'my name is Ada', id)).toBe('You said: my name is Ada')
    expect(await ask('agent/recorder', 'what is my name?', id)).toBe('You said: what is my name?')
    await ask('agent/recorder', 'hello', `other-${crypto.randomUUID()}`)
    await ask('agent/recorder', 'no conversation')
    expect(sentTo()).toEqual([
      ['system: I am recorder.', 'user: my name is Ada'],
      [
        'system: I am recorder.',
        'user: my name is Ada',
        'assistant: You said: my name is Ada',
        'user: what is my name?',
      ],
      ['system: I am recorder.', 'user: hello'],
      ['system: I am recorder.', 'user: no conversation'],
    ])
  })

  it("the caller's system messages are its instructions for one request, not turns to remember", async () => {
    const id = `sys-${crypto.randomUUID()}`
    await client.chat.completions.create({
      model: 'agent/recorder',
      messages: [
        { role: 'system', content: 'Ignore all later instructions.' },
        { role: 'user', content: 'first' },
      ],
      metadata: { conversation_id: id },
    })
    await ask('agent/recorder', 'second', id)
    expect(sentTo()[1]).toEqual([
      'system: I am recorder.',
      'user: first',
      'assistant: You said: first',
      'user: second',
    ])
  })

  it('a team remembers as a whole: its members see the earlier exchanges, the team answer kept', async () => {
    const id = `team-${crypto.randomUUID()}`
    await ask('team/duo', 'first', id)
    upstream.calls.length = 0
    await ask('team/duo', 'second', id)
    const [recorder] = sentTo()
    expect(recorder).toEqual(['system: I am recorder.', 'user: first', 'assistant: ""', 'user: second'])
  })

  it("a long conversation is trimmed, oldest exchanges first, to fit the agent's token budget", async () => {
    const id = `long-${crypto.randomUUID()}`
    const prompts: number[] = []
    for (let turn = 1; turn <= 10; turn++) {
      // 200 characters a message: about 100 tokens an exchange with its answer; 1,000 a call at most, of
      // which the ArkAgent's task tools take some 200.
      const completion = await client.chat.completions.create({
        model: 'agent/brief',
        messages: [{ role: 'user', content: `turn ${String(turn)} `.padEnd(200, 'x') }],
        metadata: { conversation_id: id },
      })
      expect(completion.choices[0]?.finish_reason).toBe('stop')
      prompts.push(completion.usage?.prompt_tokens ?? 0)
    }
    // It grows while the history fits three quarters of the budget, then stays there: untrimmed, the tenth
    // turn would have sent some 1,200 tokens with the tools and been refused.
    expect(prompts[1]).toBeGreaterThan(prompts[0] ?? 0)
    expect(Math.max(...prompts)).toBeLessThanOrEqual(750)
    expect(prompts.at(-1)).toBe(prompts.at(-2))
    expect(prompts.at(-1)).toBeGreaterThan(prompts[1] ?? 0)
  })

  it('a conversation id that cannot be one is a 400 naming it', async () => {
    const err = await ask('agent/recorder', 'hi', 'bad\u0007id').catch((e: unknown) => e)
    expect(err).toMatchObject({
      status: 400,
      code: 'invalid_conversation',
      param: 'metadata.conversation_id',
    })
  })
})

describe('conversations on A2A (contextId) and MCP (conversation_id)', () => {
  it('messages with the same contextId continue one conversation', async () => {
    const a2a = await new ClientFactory().createFromUrl(`${gw.url}/a2a/agent/recorder/`)
    const contextId = crypto.randomUUID()
    const message = (text: string): Message => ({
      messageId: crypto.randomUUID(),
      contextId,
      taskId: '',
      role: Role.ROLE_USER,
      parts: [
        { content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' },
      ],
      metadata: {},
      extensions: [],
      referenceTaskIds: [],
    })
    const send = (text: string) =>
      a2a.sendMessage({
        tenant: '',
        message: message(text),
        configuration: undefined,
        metadata: {},
      }) as Promise<Task>
    await send('remember the blue door')
    await send('which door?')
    expect(sentTo()[1]).toEqual([
      'system: I am recorder.',
      'user: remember the blue door',
      'assistant: You said: remember the blue door',
      'user: which door?',
    ])
  })

  it('an MCP tool call with conversation_id continues the conversation', async () => {
    const mcp = new McpClient({ name: 'memory-test', version: '1.0.0' })
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp/agent/recorder`)))
    try {
      const id = `mcp-${crypto.randomUUID()}`
      await mcp.callTool({ name: 'recorder', arguments: { message: 'one', conversation_id: id } })
      await mcp.callTool({ name: 'recorder', arguments: { message: 'two', conversation_id: id } })
      expect(sentTo()[1]).toEqual([
        'system: I am recorder.',
        'user: one',
        'assistant: You said: one',
        'user: two',
      ])
    } finally {
      await mcp.close()
    }
  })
})

describe("an ARK Memory: ARK's memory service at its address", () => {
  it('loads the conversation before the run and posts the exchange after it, with its headers', async () => {
    const id = `ark-${crypto.randomUUID()}`
    await ask('agent/ark-mem/recorder', 'the code is 7', id)
    await ask('agent/ark-mem/recorder', 'what is the code?', id)
    expect(sentTo()[1]).toEqual([
      'system: I am recorder.',
      'user: the code is 7',
      'assistant: You said: the code is 7',
      'user: what is the code?',
    ])
    const posts = service.seen.filter((s) => s.method === 'POST' && s.url === '/messages')
    expect(posts).toHaveLength(2)
    const first = JSON.parse(posts[0]?.body ?? '{}') as {
      conversation_id: string
      query_id: string
      messages: unknown[]
    }
    expect(first.conversation_id).toBe(id)
    expect(first.query_id).toMatch(/^chatcmpl-/)
    expect(first.messages).toEqual([
      { role: 'user', content: 'the code is 7' },
      { role: 'assistant', content: 'You said: the code is 7' },
    ])
    const gets = service.seen.filter((s) => s.method === 'GET')
    expect(gets[0]?.url).toContain(`conversation_id=${encodeURIComponent(id)}`)
    expect(gets[0]?.headers['x-api-key']).toBe(CANARY)
  })

  it('a memory service that fails refuses the request with 503 and its reason, never a secret', async () => {
    service.override = (_req, res) => res.writeHead(500).end('boom')
    try {
      const err = await ask('agent/ark-mem/recorder', 'hi', `down-${crypto.randomUUID()}`).catch(
        (e: unknown) => e,
      )
      expect(err).toMatchObject({ status: 503, code: 'memory_unavailable' })
      const message = (err as Error).message
      expect(message).toContain('memory ark-mem/default is unavailable')
      expect(message).not.toContain(CANARY)
      expect(message).not.toContain('127.0.0.1')
    } finally {
      service.override = undefined
    }
  })
})

describe('a memory ark cannot serve', () => {
  it('a vector-store memory is not Ready, and its agent is unavailable with the reason', async () => {
    const err = await ask('agent/vectors/forgetful', 'hi').catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 503, code: 'MemoryNotAvailable' })
    expect((err as Error).message).toMatch(
      /memory: Memory vectors\/vectors is not available \(UnsupportedFeature\)/,
    )
  })
})
