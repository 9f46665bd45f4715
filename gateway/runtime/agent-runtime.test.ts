/**
 * How the runtime keeps prepared agents: tool kinds from a table keyed by Tool type, preparations made ahead of
 * tasks for warm agents and made again when they change, and what prepared tools hold let go when their agent
 * is dropped.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Catalog, ManifestStore } from '../../controller/store/index.ts'
import { memorySource } from '../../test/manifests.ts'
import { AgentRuntime } from './agent-runtime.ts'
import { createMockProvider } from './providers/mock.ts'
import type { Task } from './task.ts'
import { BUILTIN_TOOLS } from './tools/builtin.ts'
import type { ToolKind, ToolKinds } from './tools/kinds.ts'
import { TOOL_KINDS, definition } from './tools/kinds.ts'

const manifests = (description: string) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: lookup }
spec:
  type: agent
  description: ${description}
  agent: { name: helper }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec: { prompt: You help. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: asker }
spec:
  prompt: You ask.
  tools: [{ type: custom, name: lookup }]
`

/** A `agent` kind that records what it made and what was let go, and can be held back. */
function recordingKind(): {
  kind: ToolKind<'agent'>
  made: string[]
  disposed: string[]
  hold(): () => void
} {
  const made: string[] = []
  const disposed: string[] = []
  let gate: Promise<void> = Promise.resolve()
  return {
    made,
    disposed,
    hold() {
      let release: () => void = () => undefined
      gate = new Promise((resolve) => (release = resolve))
      return release
    },
    kind: async (_impl, face) => {
      await gate
      const label = `${face.name}: ${face.description ?? ''}`
      made.push(label)
      return {
        name: face.name,
        definition: definition(face.name, face.description ?? '', { type: 'object' }),
        validator: undefined,
        execute: () => ({ content: 'looked up' }),
        dispose: () => disposed.push(label),
      }
    },
  }
}

let source: ReturnType<typeof memorySource>
let store: ManifestStore
let catalog: Catalog
let runtime: AgentRuntime | undefined

beforeEach(async () => {
  source = memorySource(manifests('first'))
  store = new ManifestStore(source)
  await store.start()
  catalog = new Catalog(store)
})

afterEach(async () => {
  runtime?.close()
  runtime = undefined
  catalog.close()
  await store.close()
})

function start(kinds: ToolKinds, prepareTimeoutMs?: number): AgentRuntime {
  runtime = new AgentRuntime({
    catalog,
    createProvider: createMockProvider,
    builtins: BUILTIN_TOOLS,
    toolKinds: kinds,
    ...(prepareTimeoutMs === undefined ? {} : { prepareTimeoutMs }),
  })
  return runtime
}

const asker = () => catalog.get('Agent', { namespace: 'default', name: 'asker' })
let taskNumber = 0
const task = (content: string): Task => ({
  id: `t-${String(++taskNumber)}`,
  agent: { namespace: 'default', name: 'asker' },
  messages: [{ role: 'user', content }],
  parameters: {},
  stream: false,
  depth: 0,
})

describe('tool kinds', () => {
  it("a Tool's type picks its kind from the table; a type without an entry refuses the agent with the reason", async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind })
    const prepared = await rt.prepare(asker()!)
    expect([...prepared.tools.keys()]).toEqual(['lookup'])
    expect(rec.made).toEqual(['lookup: first'])

    const without = start({ builtin: TOOL_KINDS.builtin })
    await expect(without.prepare(asker()!)).rejects.toThrow(
      'tool lookup is of type agent, which this runtime cannot run yet',
    )
    const result = await without.run(task('lookup {}'), { signal: new AbortController().signal })
    expect(result).toMatchObject({
      outcome: 'error',
      error: 'agent/asker cannot run: tool lookup is of type agent, which this runtime cannot run yet',
    })
  })
})

describe('preparations', () => {
  it('a warm agent is prepared before its first task, again when it changes, and its old tools are let go', async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind })
    rt.warm({ namespace: 'default', name: 'asker' })
    await vi.waitFor(() => expect(rec.made).toEqual(['lookup: first']))

    source.replace(manifests('second'))
    await vi.waitFor(() => expect(rec.made).toEqual(['lookup: first', 'lookup: second']))
    expect(rec.disposed).toEqual(['lookup: first'])

    // A task finds it prepared: nothing more is made for it.
    const result = await rt.run(task('hello'), { signal: new AbortController().signal })
    expect(result.outcome).toBe('answer')
    expect(rec.made).toHaveLength(2)

    rt.cool({ namespace: 'default', name: 'asker' })
    expect(rec.disposed).toEqual(['lookup: first', 'lookup: second'])
    source.replace(manifests('third'))
    await new Promise((r) => setTimeout(r, 50))
    expect(rec.made).toHaveLength(2)
  })

  it('warmAll prepares every agent, those that appear later too', async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind })
    rt.warmAll()
    await vi.waitFor(() => expect(rec.made).toEqual(['lookup: first']))
    source.replace(
      `${manifests('first')}---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: second-asker }
spec: { prompt: Me too., tools: [{ type: custom, name: lookup }] }
`,
    )
    await vi.waitFor(() => expect(rec.made).toEqual(['lookup: first', 'lookup: first']))
  })

  it('a preparation that lands after its agent changed is let go at once, never used', async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind })
    const release = rec.hold()
    const first = rt.prepare(asker()!)
    source.replace(manifests('second'))
    const second = rt.prepare(asker()!)
    release()
    await Promise.all([first, second])
    expect(rec.made.sort()).toEqual(['lookup: first', 'lookup: second'])
    await vi.waitFor(() => expect(rec.disposed).toEqual(['lookup: first']))
    expect((await rt.prepare(asker()!)).tools.get('lookup')?.definition.function.description).toBe('second')
  })

  it('a preparation past its deadline fails the task with the reason, is let go when it lands, and is tried again', async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind }, 100)
    const release = rec.hold()
    const result = await rt.run(task('hello'), { signal: new AbortController().signal })
    expect(result).toMatchObject({
      outcome: 'error',
      error: 'agent/asker cannot run: preparing its tools took longer than 0.1 s',
    })
    release()
    await vi.waitFor(() => expect(rec.disposed).toEqual(['lookup: first']))
    // Not kept: the next task prepares afresh, and runs.
    const again = await rt.run(task('hello'), { signal: new AbortController().signal })
    expect(again.outcome).toBe('answer')
    expect(rec.made).toEqual(['lookup: first', 'lookup: first'])
  })

  it('a run under way keeps the tools it started with when its preparation goes stale; the last run out lets them go', async () => {
    const disposed: string[] = []
    let seenDisposed: boolean[] = []
    let generation = 0
    const kind: ToolKind<'agent'> = (_impl, face, env) => {
      const label = `${face.name}#${String(++generation)}`
      let gone = false
      return {
        name: face.name,
        definition: definition(face.name, '', { type: 'object' }),
        validator: undefined,
        execute: async () => {
          // What an MCP server's tools/list_changed does in the middle of a run.
          env.stale()
          await new Promise((resolve) => setTimeout(resolve, 10))
          seenDisposed = [...seenDisposed, gone]
          return { content: gone ? 'its tools were let go' : 'looked up' }
        },
        dispose: () => {
          gone = true
          disposed.push(label)
        },
      }
    }
    const rt = start({ ...TOOL_KINDS, agent: kind })
    const result = await rt.run(task('lookup {}\nlookup {}'), { signal: new AbortController().signal })
    // Both calls of the run went to the tool it started with, still held.
    expect(result.content).toBe('lookup: looked up\nlookup: looked up')
    expect(seenDisposed).toEqual([false, false])
    // Let go once the run ended; the next task prepares the agent anew.
    expect(disposed).toEqual(['lookup#1'])
    await rt.run(task('hi'), { signal: new AbortController().signal })
    expect(generation).toBe(2)
  })

  it('close lets go of every prepared tool', async () => {
    const rec = recordingKind()
    const rt = start({ ...TOOL_KINDS, agent: rec.kind })
    await rt.prepare(asker()!)
    rt.close()
    runtime = undefined
    expect(rec.disposed).toEqual(['lookup: first'])
  })
})
