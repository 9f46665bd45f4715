/**
 * Teams end to end through the HTTP gateway with the openai SDK: every ARK strategy (sequential, round-robin,
 * loops, graph, selector) and ArkTeam's pipeline and dynamic modes, teams in teams, streaming, cancellation and
 * unavailable teams. Member agents run on the mock model, each answering with its own system prompt
 * (`show: system`) or a scripted `answer:`; the selector's and the recorders' model is a fake OpenAI upstream
 * driven through the real SDK, whose requests show what each member and the selector were sent.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { BuiltinTool } from '../gateway/index.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { RunningGateway } from './gateway-server.ts'
import { startGateway } from './gateway-server.ts'
import { clientFor } from './gateway-suite.ts'

/**
 * Resolves once two calls wait on it at the same time; a call alone gives up after 5 s. Two pipeline steps
 * that each call it pass only if they run side by side.
 */
function barrier(): BuiltinTool {
  let waiting: (() => void)[] = []
  return {
    description: 'Waits for a second caller.',
    inputSchema: { type: 'object', properties: {} },
    execute() {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting = waiting.filter((w) => w !== pass)
          resolve({ content: 'alone', isError: true })
        }, 5000)
        const pass = () => {
          clearTimeout(timer)
          resolve({ content: 'met' })
        }
        waiting.push(pass)
        if (waiting.length >= 2) for (const w of waiting.splice(0)) w()
      })
    },
  }
}

const agent = (name: string, prompt: string, extra = '') => `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: ${name} }
spec:
  description: the ${name}
  prompt: ${prompt}
${extra}`

function manifests(upstream: FakeUpstream): string {
  return [
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }`,
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: slow }
spec:
  provider: mock
  model: { value: mock-slow }
  config: { mock: { properties: { latencyMs: { value: "3000" } } } }`,
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: scripted }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${upstream.url}" }
      apiKey: { value: sk-test }`,
    agent('researcher', 'I am the researcher.'),
    agent('writer', 'I am the writer.'),
    agent('editor', 'I am the editor.'),
    agent('sleeper', 'I am slow.', '  modelRef: { name: slow }'),
    agent('after-sleeper', 'I come after the sleeper.'),
    agent('recorder-a', 'I record.', '  modelRef: { name: scripted }'),
    agent('recorder-b', 'I record too.', '  modelRef: { name: scripted }'),
    agent('picker', 'I pick.', '  modelRef: { name: scripted }'),
    agent('waiter', 'I wait.', '  tools: [{ type: built-in, name: barrier }]'),
    team('seq', 'sequential', ['researcher', 'writer', 'editor']),
    team('rr', 'round-robin', ['researcher', 'writer'], 'maxTurns: 3'),
    team('loop', 'sequential', ['researcher', 'writer'], 'loops: true\n  maxTurns: 5'),
    team(
      'flow',
      'graph',
      ['researcher', 'writer', 'editor'],
      'graph: { edges: [{ from: researcher, to: editor }, { from: editor, to: writer }] }',
    ),
    team(
      'chooser',
      'selector',
      ['researcher', 'writer', 'editor'],
      'maxTurns: 4\n  selector: { agent: picker, enableTerminateTool: true }',
    ),
    team('recorded', 'sequential', ['recorder-a', 'recorder-b']),
    team('one-chooser', 'selector', ['writer'], 'selector: { agent: picker, enableTerminateTool: true }'),
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: parked }
spec: { model: mock, systemPrompt: I am parked., replicas: 0 }`,
    agent(
      'greeter',
      'Greet {{.name}}.',
      '  parameters: [{ name: name, valueFrom: { queryParameterRef: { name: name } } }]',
    ),
    team('parked-team', 'sequential', ['researcher', 'parked']),
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: thrifty }
spec: { model: mock, systemPrompt: I count., limits: { maxDailyTokens: 10 } }`,
    team('greeting-team', 'sequential', ['researcher', 'greeter']),
    `apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: nested }
spec:
  strategy: sequential
  members: [{ name: seq, type: team }, { name: researcher, type: agent }]`,
    team('broken', 'sequential', ['researcher', 'ghost']),
    team('slow-team', 'sequential', ['sleeper', 'after-sleeper']),
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: blog }
spec:
  roles:
    - { name: research, arkAgent: researcher }
    - { name: left, arkAgent: waiter }
    - { name: right, arkAgent: waiter }
    - { name: write, arkAgent: writer }
  pipeline:
    - role: research
      inputs: { prompt: "answer: notes on {{ .input }}" }
    - role: left
      dependsOn: [research]
      inputs: { prompt: "barrier {}" }
    - role: right
      dependsOn: [research]
      inputs: { prompt: "barrier {}" }
    - role: write
      dependsOn: [left, right]
      inputs:
        prompt: "answer: post from [{{ .steps.research.output }}] after {{ .steps.left.output }}/{{ .steps.right.output }} for {{ .input.audience }}"
  output: "{{ .steps.write.output }} (edited)"`,
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: hurried }
spec:
  entry: quick
  roles:
    - { name: quick, arkAgent: sleeper, limits: { timeoutSeconds: 1 } }`,
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: desk }
spec:
  entry: front
  roles:
    - { name: front, arkAgent: writer }
    - { name: back, arkAgent: researcher }`,
  ].join('\n---\n')
}

function team(name: string, strategy: string, members: string[], extra = ''): string {
  return `apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: ${name} }
spec:
  strategy: ${strategy}
  members: [${members.map((m) => `{ name: ${m}, type: agent }`).join(', ')}]
  ${extra}`
}

let upstream: FakeUpstream
let dir: string
let gw: RunningGateway
let client: OpenAI

beforeAll(async () => {
  upstream = await startFakeOpenAI()
  dir = await mkdtemp(join(tmpdir(), 'ark-teams-'))
  await writeFile(join(dir, 'all.yaml'), manifests(upstream))
  gw = await startGateway(dir, { poolConcurrency: 4, maxQueued: 16, builtins: { barrier: barrier() } })
  client = clientFor(gw.url)
})
afterAll(async () => {
  await gw.close()
  await upstream.close()
  await rm(dir, { recursive: true, force: true })
})
beforeEach(() => {
  upstream.calls.length = 0
})

async function ask(target: string, content: string, metadata?: Record<string, string>): Promise<string> {
  const completion = await client.chat.completions.create({
    model: target,
    messages: [{ role: 'user', content }],
    ...(metadata === undefined ? {} : { metadata }),
  })
  expect(completion.choices[0]?.finish_reason).toBe('stop')
  expect(completion.model).toBe(target)
  return completion.choices[0]?.message.content ?? ''
}

/** A completion of the fake upstream that calls one tool. */
function toolCall(name: string, args: object) {
  return {
    status: 200,
    body: {
      id: 'chatcmpl-scripted',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o',
      choices: [
        {
          index: 0,
          finish_reason: 'tool_calls',
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call-1', type: 'function', function: { name, arguments: JSON.stringify(args) } },
            ],
          },
        },
      ],
      usage: { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 },
    },
  }
}

interface SentBody {
  messages: { role: string; content: string | null; name?: string }[]
  tools?: { function: { name: string; parameters: { properties: Record<string, { enum?: string[] }> } } }[]
  tool_choice?: unknown
}
const sent = (i: number) =>
  upstream.calls.filter((c) => c.path.endsWith('/chat/completions'))[i]?.body as SentBody

describe('ARK team strategies', () => {
  it('sequential: each member once, in order; the last one answers', async () => {
    expect(await ask('team/seq', 'show: system')).toBe('I am the editor.')
  })

  it('a later member sees the earlier answers, named after their members, with the user message last', async () => {
    const completion = await client.chat.completions.create({
      model: 'team/recorded',
      messages: [
        { role: 'system', content: 'Answer in French.' },
        { role: 'user', content: 'hello team' },
      ],
    })
    expect(completion.choices[0]?.message.content).toBe('You said: hello team')
    // The caller's instructions reach every member, before the conversation.
    expect(sent(0).messages.map((m) => [m.role, m.content])).toEqual([
      ['system', 'I record.'],
      ['system', 'Answer in French.'],
      ['user', 'hello team'],
    ])
    const second = sent(1)
    expect(second.messages.map((m) => [m.role, m.name ?? '', m.content])).toEqual([
      ['system', '', 'I record too.'],
      ['system', '', 'Answer in French.'],
      ['assistant', 'recorder-a', 'You said: hello team'],
      ['user', '', 'hello team'],
    ])
  })

  it('a selector team of one still asks its selector, which may end it', async () => {
    upstream.next(
      toolCall('select-next-speaker', { speaker: 'writer' }),
      toolCall('terminate', { response: 'enough' }),
    )
    expect(await ask('team/one-chooser', 'show: system')).toBe('enough')
    expect(upstream.calls.filter((c) => c.path.endsWith('/chat/completions'))).toHaveLength(2)
  })

  it('round-robin goes around until maxTurns, and so does sequential with loops', async () => {
    const rr = await streamEvents('team/rr', 'show: system')
    expect(rr.answer).toBe('I am the researcher.')
    const loop = await ask('team/loop', 'show: system')
    expect(loop).toBe('I am the researcher.')
  })

  it('graph: from the first member along the edges until one has none', async () => {
    expect(await ask('team/flow', 'show: system')).toBe('I am the writer.')
  })

  it('selector: the selector model picks by tool among the members, and terminate ends the team', async () => {
    upstream.next(
      toolCall('select-next-speaker', { speaker: 'writer' }),
      toolCall('select-next-speaker', { speaker: 'editor' }),
      toolCall('terminate', { response: 'All done: the editor approved.' }),
    )
    const answer = await ask('team/chooser', 'show: system')
    expect(answer).toBe('All done: the editor approved.')
    const calls = upstream.calls.filter((c) => c.path.endsWith('/chat/completions'))
    expect(calls).toHaveLength(3)
    const first = sent(0)
    expect(first.tool_choice).toBe('required')
    const select = first.tools?.find((t) => t.function.name === 'select-next-speaker')
    expect(select?.function.parameters.properties.speaker?.enum).toEqual(['researcher', 'writer', 'editor'])
    expect(first.tools?.map((t) => t.function.name)).toContain('terminate')
    expect(first.messages[0]?.content).toContain(
      'researcher: the researcher, writer: the writer, editor: the editor',
    )
    // The second choice reads what the writer said.
    expect(sent(1).messages[0]?.content).toContain('# writer:\nI am the writer.')
  })

  it('selector: a choice in words is read, and one naming nobody after the first turn ends the team', async () => {
    upstream.next(
      { status: 200, body: textCompletion('I choose the editor next.') },
      { status: 200, body: textCompletion('no idea') },
    )
    expect(await ask('team/chooser', 'show: system')).toBe('I am the editor.')
  })

  it('a team in a team runs nested, its members taking their turns', async () => {
    expect(await ask('team/nested', 'show: system')).toBe('I am the researcher.')
    const events = await streamEvents('team/nested', 'answer: ok')
    expect(events.answer).toBe('ok')
  })

  it('streams the same answer it gives at once', async () => {
    for (const target of ['team/seq', 'team/chooser', 'team/blog']) {
      if (target === 'team/chooser')
        upstream.next(
          { status: 200, body: textCompletion('writer') },
          { status: 200, body: textCompletion('none') },
        )
      const once =
        target === 'team/blog'
          ? await ask(target, 'cats', { audience: 'kids' })
          : await ask(target, 'show: system')
      if (target === 'team/chooser')
        upstream.next(
          { status: 200, body: textCompletion('writer') },
          { status: 200, body: textCompletion('none') },
        )
      const streamed = await streamEvents(
        target,
        target === 'team/blog' ? 'cats' : 'show: system',
        target === 'team/blog' ? { audience: 'kids' } : undefined,
      )
      expect(streamed.answer).toBe(once)
      expect(streamed.chunks).toBeGreaterThan(0)
    }
  })
})

describe('ArkTeam', () => {
  it('pipeline: steps in dependency order, independent ones side by side, inputs from earlier outputs', async () => {
    const answer = await ask('team/blog', 'cats', { audience: 'kids' })
    // Both waiters met at the barrier: they ran at the same time. The writer read the research and both.
    expect(answer).toBe('post from [notes on cats] after barrier: met/barrier: met for kids (edited)')
  })

  it("a role's limits bound its member's turns more tightly than the agent's own", async () => {
    // The sleeper's model takes 3 s and its own timeout is 120 s; the role gives it 1 s.
    const err = await client.chat.completions
      .create({ model: 'team/hurried', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 504, code: 'timeout' })
    expect((err as Error).message).toMatch(
      /member quick of team\/hurried ended with timeout: agent\/sleeper timed out after 1 s/,
    )
  })

  it('dynamic: the entry role takes the conversation', async () => {
    expect(await ask('team/desk', 'show: system')).toBe('I am the writer.')
  })
})

describe('a team that cannot run', () => {
  it('is unavailable while a member is missing, with the reason, before anything runs', async () => {
    const err = await client.chat.completions
      .create({ model: 'team/broken', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 503 })
    expect((err as Error).message).toMatch(/ghost/)
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toContain('team/seq')
  })

  it("a member scaled to zero, or a member's missing parameter, is refused before any member runs", async () => {
    const parked = await client.chat.completions
      .create({ model: 'team/parked-team', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(parked).toMatchObject({ status: 503, code: 'ScaledToZero' })
    expect((parked as Error).message).toContain('its member agent/parked is scaled to zero')
    const greeting = await client.chat.completions
      .create({ model: 'team/greeting-team', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(greeting).toMatchObject({ status: 400, code: 'missing_parameter', param: 'metadata.name' })
    expect(await ask('team/greeting-team', 'show: system', { name: 'Ada' })).toBe('Greet Ada.')
  })

  it('a spent daily budget is a 429 with Retry-After before anything runs, streamed or not', async () => {
    // The first run spends more than the 10 tokens a day the agent has.
    expect(await ask('agent/thrifty', 'hello there, thrifty agent')).toContain('You said')
    for (const stream of [false, true]) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'agent/thrifty',
          stream,
          messages: [{ role: 'user', content: 'again' }],
        }),
      })
      expect(res.status).toBe(429)
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
      const body = (await res.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('daily_token_budget_exceeded')
      expect(body.error.message).toMatch(/agent\/thrifty has used \d+ of its 10 tokens today/)
    }
  })

  it('a client that goes away cancels the member running, and the members after it never start', async () => {
    const cancel = new AbortController()
    const call = client.chat.completions
      .create(
        { model: 'team/slow-team', messages: [{ role: 'user', content: 'hi' }] },
        { signal: cancel.signal },
      )
      .catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 300))
    cancel.abort()
    expect(await call).toBeInstanceOf(Error)
    // The sleeper's run was cut: its pool is free again well before its 3 s would have ended.
    await waitFor(async () => (await inFlight('default/sleeper')) === 0)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/ark_agent_runs_total\{agent="default\/sleeper",outcome="cancelled"\} 1/)
    expect(metrics).not.toMatch(/ark_agent_runs_total\{agent="default\/after-sleeper"/)
  })
})

function textCompletion(content: string) {
  return {
    id: 'chatcmpl-scripted',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o',
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }],
    usage: { prompt_tokens: 100, completion_tokens: 5, total_tokens: 105 },
  }
}

async function streamEvents(
  target: string,
  content: string,
  metadata?: Record<string, string>,
): Promise<{ answer: string; chunks: number }> {
  const stream = await client.chat.completions.create({
    model: target,
    messages: [{ role: 'user', content }],
    stream: true,
    ...(metadata === undefined ? {} : { metadata }),
  })
  let answer = ''
  let chunks = 0
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta.content
    if (typeof text === 'string' && text !== '') {
      answer += text
      chunks++
    }
  }
  return { answer, chunks }
}

/** The gateway's `ark_pool_in_flight` for one pool, read from /metrics. */
async function inFlight(pool: string): Promise<number | undefined> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`ark_pool_in_flight{pool="${pool}"}`))
  return line === undefined ? undefined : Number(line.split(' ').at(-1))
}

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 50))
  }
}
