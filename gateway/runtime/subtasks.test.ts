import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { ObjectRef } from '../../controller/api/index.ts'
import { Catalog, ManifestStore } from '../../controller/store/index.ts'
import { memorySource } from '../../test/manifests.ts'
import { MemoryQueue } from '../pool/memory.ts'
import type { PoolLimits } from '../pool/queue.ts'
import { AgentRuntime } from './agent-runtime.ts'
import type { AgentEvent } from './events.ts'
import { createMockProvider } from './providers/mock.ts'
import { MAX_DEPTH, MAX_SUBTASKS } from './subtasks.ts'
import type { Task, TaskResult } from './task.ts'
import { BUILTIN_TOOLS } from './tools/builtin.ts'

// ---------------------------------------------------------------------------------------------------------
// A runtime over in-memory manifests, its tasks run by in-process pools the way the gateway wires them, on
// the mock model: a user message `tool {json}` makes the agent call that tool (one line per turn), and its
// answer then lists the tool results.

const MANIFESTS = `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: lead }
spec: { model: mock, systemPrompt: You lead. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: worker }
spec: { model: mock, systemPrompt: You work. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: slow }
spec: { model: mock-slow, systemPrompt: You take your time. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: writer }
spec: { model: mock, systemPrompt: You write. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: reviewer }
spec: { model: mock, systemPrompt: You review. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: crew }
spec:
  entry: lead
  roles:
    - { name: lead, arkAgent: lead, canDelegate: [writer, reviewer] }
    - { name: writer, arkAgent: writer, canDelegate: [reviewer] }
    - { name: reviewer, arkAgent: reviewer, canDelegate: [lead] }
    - { name: helper, arkAgent: worker }
---
# twin plays in two teams whose "helper" roles are different agents.
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: twin }
spec: { model: mock, systemPrompt: You are in two teams. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: red }
spec:
  entry: twin
  roles:
    - { name: twin, arkAgent: twin, canDelegate: [helper] }
    - { name: helper, arkAgent: worker }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: blue }
spec:
  entry: twin
  roles:
    - { name: twin, arkAgent: twin, canDelegate: [helper] }
    - { name: helper, arkAgent: writer }
---
# Cannot run on this test's runtime, made without an MCP client: its tasks fail.
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: broken }
spec:
  model: mock
  systemPrompt: I cannot run.
  mcpServers: [{ name: search, url: 'http://127.0.0.1:9/sse' }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: plain }
spec:
  prompt: An ARK agent has the tools it lists.
  tools:
    - { type: built-in, name: calculator }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: supervisor }
spec:
  prompt: An ARK agent may list the task tools.
  tools:
    - { type: built-in, name: submit_subtask }
    - { type: built-in, name: get_subtask_result }
    - { type: built-in, name: delegate }
`

/** Manifests held in memory; `replace` is an edit of the folder. */
interface System {
  readonly source: ReturnType<typeof memorySource>
  readonly catalog: Catalog
  readonly runtime: AgentRuntime
  readonly queue: MemoryQueue
  /** Every event of every run, with the agent that ran it. */
  readonly events: { readonly agent: string; readonly event: AgentEvent }[]
  close(): Promise<void>
}

const LIMITS: PoolLimits = { concurrency: 8, maxQueued: 64 }

async function startSystem(
  options: { enqueue?: boolean; limits?: (ref: ObjectRef) => PoolLimits } = {},
): Promise<System> {
  const source = memorySource(MANIFESTS)
  const store = new ManifestStore(source)
  await store.start()
  expect(store.problems()).toEqual([])
  const catalog = new Catalog(store)
  const events: System['events'] = []
  const runtime = new AgentRuntime({
    catalog,
    // `mock-slow` takes a minute to answer: long enough to still be running when a test looks.
    createProvider: (config) =>
      createMockProvider(
        config.model === 'mock-slow' ? { ...config, properties: { latencyMs: '60000' } } : config,
      ),
    builtins: BUILTIN_TOOLS,
    observe: (agent, event) => events.push({ agent: agent.id, event }),
  })
  // As the gateway does: the queue runs the runtime, and the runtime's subtasks go through the queue.
  const queue = new MemoryQueue(
    (task, context) => runtime.run(task, context),
    options.limits ?? (() => LIMITS),
  )
  runtime.submit = async (task, signal) => (await queue.submit(task, { signal })).result
  if (options.enqueue !== false) runtime.enqueue = (task, signal) => queue.submit(task, { signal })
  return {
    source,
    catalog,
    runtime,
    queue,
    events,
    async close() {
      await queue.close()
      runtime.close()
      catalog.close()
      await store.close()
    },
  }
}

let sys: System
let taskNumber = 0

beforeEach(async () => {
  sys = await startSystem()
})
afterEach(() => sys.close())

/** Sends `content` to `agent` as a client would, and waits for the answer. */
async function ask(agent: string, content: string, extra: Partial<Task> = {}, on = sys): Promise<TaskResult> {
  const task: Task = {
    id: `task-${String(++taskNumber)}`,
    agent: { namespace: 'default', name: agent },
    messages: [{ role: 'user', content }],
    parameters: {},
    stream: false,
    depth: 0,
    ...extra,
  }
  return await (
    await on.queue.submit(task, { signal: new AbortController().signal })
  ).result
}

/** What `tool` returned to `agent`'s runs, in order. */
function toolResults(agent: string, tool: string, on = sys): string[] {
  return on.events.flatMap(({ agent: a, event: e }) =>
    a === `agent/${agent}` && e.type === 'tool.complete' && e.tool === tool ? [e.result] : [],
  )
}

const line = (tool: string, args: object) => `${tool} ${JSON.stringify(args)}`
const toolNames = async (name: string) => [
  ...(await sys.runtime.prepare(sys.catalog.get('Agent', { namespace: 'default', name })!)).tools.keys(),
]

// ---------------------------------------------------------------------------------------------------------

describe('which agents have the task tools', () => {
  it('every ArkAgent has submit_subtask and get_subtask_result; delegate only with a team role that may delegate', async () => {
    expect(await toolNames('worker')).toEqual(['submit_subtask', 'get_subtask_result'])
    expect(await toolNames('lead')).toEqual(['submit_subtask', 'get_subtask_result', 'delegate'])
    // The model is told where it may delegate.
    const lead = await sys.runtime.prepare(sys.catalog.get('Agent', { namespace: 'default', name: 'lead' })!)
    expect(lead.tools.get('delegate')?.definition.function.description).toMatch(
      /You may delegate to: reviewer, writer\.$/,
    )
  })

  it('an ARK agent has the tools it lists, the task tools too when it lists them', async () => {
    expect(await toolNames('plain')).toEqual(['calculator'])
    expect(await toolNames('supervisor')).toEqual(['submit_subtask', 'get_subtask_result', 'delegate'])
  })

  it('a Team edit gives or takes delegate without a restart', async () => {
    expect(await toolNames('worker')).not.toContain('delegate')
    sys.source.replace(
      MANIFESTS.replace(
        '{ name: helper, arkAgent: worker }',
        '{ name: helper, arkAgent: worker, canDelegate: [writer] }',
      ),
    )
    expect(await toolNames('worker')).toContain('delegate')
    sys.source.replace(MANIFESTS)
    expect(await toolNames('worker')).not.toContain('delegate')
  })
})

describe('submit_subtask and get_subtask_result', () => {
  it('queues a task without waiting, then collects its answer', async () => {
    const result = await ask(
      'lead',
      [
        line('submit_subtask', { agent: 'worker', input: 'answer: the facts' }),
        line('get_subtask_result', { id: 'subtask-1' }),
      ].join('\n'),
    )
    expect(result.outcome).toBe('answer')
    expect(toolResults('lead', 'submit_subtask').map((r) => JSON.parse(r) as unknown)).toEqual([
      { id: 'subtask-1', agent: 'default/worker', status: 'submitted' },
    ])
    expect(toolResults('lead', 'get_subtask_result').map((r) => JSON.parse(r) as unknown)).toEqual([
      { id: 'subtask-1', agent: 'default/worker', status: 'succeeded', content: 'the facts' },
    ])
    // The worker ran a task of its own, one level deeper, with the lead in its chain.
    const started = sys.events.filter((e) => e.agent === 'agent/worker' && e.event.type === 'agent.start')
    expect(started).toHaveLength(1)
  })

  it('works on a runtime that only has the waiting submit hook', async () => {
    const other = await startSystem({ enqueue: false })
    try {
      await ask(
        'lead',
        [
          line('submit_subtask', { agent: 'default/worker', input: 'answer: still works' }),
          line('get_subtask_result', { id: 'subtask-1' }),
        ].join('\n'),
        {},
        other,
      )
      expect(toolResults('lead', 'get_subtask_result', other)).toEqual([
        JSON.stringify({
          id: 'subtask-1',
          agent: 'default/worker',
          status: 'succeeded',
          content: 'still works',
        }),
      ])
    } finally {
      await other.close()
    }
  })

  it('a subtask that fails is a result that says so, not a failed tool call', async () => {
    await ask(
      'lead',
      [
        line('submit_subtask', { agent: 'broken', input: 'hi' }),
        line('get_subtask_result', { id: 'subtask-1' }),
      ].join('\n'),
    )
    expect(toolResults('lead', 'get_subtask_result').map((r) => JSON.parse(r) as unknown)).toEqual([
      {
        id: 'subtask-1',
        agent: 'default/broken',
        status: 'failed',
        error: 'agent/broken cannot run: mcpServers search needs the MCP client, which this runtime lacks',
      },
    ])
    const call = sys.events.find(
      (e) => e.event.type === 'tool.complete' && e.event.tool === 'get_subtask_result',
    )
    expect(call?.event).toMatchObject({ outcome: 'ok' })
  })

  it('an unknown id is a tool error that lists the ids there are', async () => {
    await ask('lead', line('get_subtask_result', { id: 'subtask-9' }))
    expect(toolResults('lead', 'get_subtask_result')).toEqual([
      'error: there is no subtask "subtask-9" in this task; it has submitted none',
    ])
    await ask(
      'lead',
      [
        line('submit_subtask', { agent: 'worker', input: 'answer: one' }),
        line('get_subtask_result', { id: 'nope' }),
      ].join('\n'),
    )
    expect(toolResults('lead', 'get_subtask_result').at(-1)).toBe(
      'error: there is no subtask "nope" in this task; its subtasks are subtask-1',
    )
  })

  it('results belong to the run that submitted them', async () => {
    await ask('lead', line('submit_subtask', { agent: 'worker', input: 'answer: mine' }))
    await ask('lead', line('get_subtask_result', { id: 'subtask-1' }))
    expect(toolResults('lead', 'get_subtask_result')).toEqual([
      'error: there is no subtask "subtask-1" in this task; it has submitted none',
    ])
  })

  it('an unknown agent is a tool error naming it; the run goes on', async () => {
    const result = await ask('lead', line('submit_subtask', { agent: 'nobody', input: 'hi' }))
    expect(result.outcome).toBe('answer')
    expect(toolResults('lead', 'submit_subtask')).toEqual([
      'error: there is no agent default/nobody; name an agent of this installation',
    ])
    const tool = sys.events.find((e) => e.event.type === 'tool.complete')?.event
    expect(tool).toMatchObject({ outcome: 'error' })
  })

  it(`one run may submit at most ${String(MAX_SUBTASKS)} subtasks`, async () => {
    const call = line('submit_subtask', { agent: 'worker', input: 'answer: ok' })
    // All in one turn: the calls run at once, and the bound still holds.
    await ask('lead', Array.from({ length: MAX_SUBTASKS + 1 }, () => call).join(' '))
    const results = toolResults('lead', 'submit_subtask')
    expect(results).toHaveLength(MAX_SUBTASKS + 1)
    expect(results.filter((r) => r.startsWith('{'))).toHaveLength(MAX_SUBTASKS)
    // Tool results arrive as the calls finish: the refusal comes first.
    expect(results.filter((r) => r.startsWith('error:'))).toEqual([
      `error: this task has already submitted ${String(MAX_SUBTASKS)} subtasks, as many as one task may; collect their results with get_subtask_result`,
    ])
    expect(
      new Set(results.filter((r) => r.startsWith('{')).map((r) => (JSON.parse(r) as { id: string }).id)).size,
    ).toBe(MAX_SUBTASKS)
  })

  it('without waiting it says running; what still runs when the parent ends is cancelled', async () => {
    const result = await ask(
      'lead',
      [
        line('submit_subtask', { agent: 'slow', input: 'take a minute' }),
        line('get_subtask_result', { id: 'subtask-1', wait: false }),
        'answer: left it running',
      ].join('\n'),
    )
    expect(result).toMatchObject({ outcome: 'answer', content: 'left it running' })
    expect(toolResults('lead', 'get_subtask_result')).toEqual([
      JSON.stringify({ id: 'subtask-1', agent: 'default/slow', status: 'running' }),
    ])
    await vi.waitFor(() => {
      const done = sys.events.find((e) => e.agent === 'agent/slow' && e.event.type === 'agent.complete')
      expect(done?.event).toMatchObject({ outcome: 'cancelled' })
    })
  })

  it('a full pool refuses the subtask at once', async () => {
    const other = await startSystem({
      limits: (ref) => (ref.name === 'slow' ? { concurrency: 1, maxQueued: 0 } : LIMITS),
    })
    try {
      const call = line('submit_subtask', { agent: 'slow', input: 'take a minute' })
      await ask('lead', `${call}\n${call}`, {}, other)
      const [first, second] = toolResults('lead', 'submit_subtask', other)
      expect(first).toBe(JSON.stringify({ id: 'subtask-1', agent: 'default/slow', status: 'submitted' }))
      expect(second).toMatch(/^error: submit_subtask failed: agent default\/slow is busy/)
    } finally {
      await other.close()
    }
  })
})

describe('delegate', () => {
  it('hands the task to the agent of a team role and returns its answer', async () => {
    const result = await ask('lead', line('delegate', { role: 'writer', input: 'answer: a first draft' }))
    expect(toolResults('lead', 'delegate')).toEqual(['a first draft'])
    expect(result).toMatchObject({ outcome: 'answer', content: 'delegate: a first draft' })
  })

  it('a role not in canDelegate is a tool error listing the roles that are', async () => {
    await ask('writer', line('delegate', { role: 'lead', input: 'you do it' }))
    expect(toolResults('writer', 'delegate')).toEqual([
      'error: writer may not delegate to role "lead"; it may delegate to: reviewer',
    ])
    await ask('lead', line('delegate', { role: 'helper', input: 'you do it' }))
    expect(toolResults('lead', 'delegate')).toEqual([
      'error: lead may not delegate to role "helper"; it may delegate to: reviewer, writer',
    ])
  })

  it('an agent no team lets delegate is told so', async () => {
    await ask('supervisor', line('delegate', { role: 'writer', input: 'x' }))
    expect(toolResults('supervisor', 'delegate')).toEqual([
      'error: supervisor may not delegate: no team lets it (canDelegate of its role)',
    ])
  })

  it('refuses a cycle: lead delegates to reviewer, which delegates back to lead', async () => {
    const back = line('delegate', { role: 'lead', input: 'answer: never runs' })
    await ask('lead', line('delegate', { role: 'reviewer', input: back }))
    expect(toolResults('reviewer', 'delegate')).toEqual(['error: delegation cycle: lead → reviewer → lead'])
    // The reviewer answered with what it got; the lead's only run is the first one.
    expect(toolResults('lead', 'delegate')).toEqual([
      'delegate: error: delegation cycle: lead → reviewer → lead',
    ])
    expect(sys.events.filter((e) => e.agent === 'agent/lead' && e.event.type === 'agent.start')).toHaveLength(
      1,
    )
  })

  it('a longer way around is a cycle too: lead → writer → reviewer → lead', async () => {
    const third = line('delegate', { role: 'lead', input: 'answer: never runs' })
    const second = line('delegate', { role: 'reviewer', input: third })
    await ask('lead', line('delegate', { role: 'writer', input: second }))
    expect(toolResults('reviewer', 'delegate')).toEqual([
      'error: delegation cycle: lead → writer → reviewer → lead',
    ])
  })

  it('a role that two teams give to different agents is ambiguous, and the error names the teams', async () => {
    await ask('twin', line('delegate', { role: 'helper', input: 'x' }))
    expect(toolResults('twin', 'delegate')).toEqual([
      'error: role "helper" is ambiguous: team red gives it to agent worker, team blue gives it to agent writer; the teams must agree on who plays it',
    ])
  })
})

describe(`the depth bound (${String(MAX_DEPTH)})`, () => {
  it('stops submit_subtask and delegate in a task that is already that deep', async () => {
    const both = `${line('submit_subtask', { agent: 'worker', input: 'x' })} ${line('delegate', { role: 'writer', input: 'x' })}`
    await ask('lead', both, { depth: MAX_DEPTH - 1 })
    const refusal = `error: agents call agents more than ${String(MAX_DEPTH)} deep; do this part yourself`
    expect(toolResults('lead', 'submit_subtask')).toEqual([refusal])
    expect(toolResults('lead', 'delegate')).toEqual([refusal])
    expect(sys.events.filter((e) => e.agent !== 'agent/lead')).toEqual([])
    // One level less still may.
    await ask('lead', both, { depth: MAX_DEPTH - 2 })
    expect(toolResults('lead', 'delegate').at(-1)).toBe('You said: x')
  })

  it('subtasks run one level deeper than their parent', async () => {
    const tasks: Task[] = []
    const other = await startSystem()
    const submit = other.queue.submit.bind(other.queue)
    vi.spyOn(other.queue, 'submit').mockImplementation((task, options) => {
      tasks.push(task)
      return submit(task, options)
    })
    try {
      await ask(
        'lead',
        line('delegate', { role: 'writer', input: line('submit_subtask', { agent: 'worker', input: 'x' }) }),
        { depth: 2 },
        other,
      )
      expect(tasks.map((t) => [t.agent.name, t.depth, t.chain])).toEqual([
        ['lead', 2, undefined],
        ['writer', 3, ['default/lead']],
        ['worker', 4, ['default/lead', 'default/writer']],
      ])
    } finally {
      await other.close()
    }
  })
})
