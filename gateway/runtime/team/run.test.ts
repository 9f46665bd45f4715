/**
 * Team runs over a scripted `runTask` (no pools): which member speaks when, what each is sent, how a run
 * ends, and that a caller's failing sink never fails the team. The end-to-end cases, through the gateway and
 * real pools, are test/teams.test.ts and test/teams-redis.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Catalog, ManifestStore } from '../../../controller/store/index.ts'
import { memorySource } from '../../../test/manifests.ts'
import type { AgentEvent } from '../events.ts'
import type { Task, TaskResult } from '../task.ts'
import type { TeamDeps } from './run.ts'
import { MAX_TURNS, runTeam, speakerName } from './run.ts'
import { mentioned } from './selector.ts'

const agents = ['a', 'b', 'c']
  .map(
    (name) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: ${name} }
spec: { prompt: I am ${name}. }`,
  )
  .join('\n---\n')

const team = (spec: string) => `${agents}
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: t }
spec:
${spec}`

let close: (() => Promise<void>) | undefined
afterEach(async () => {
  await close?.()
  close = undefined
})

/** The team `t` of these manifests, with a runTask that answers `<agent> #<n>` and records each task. */
async function setup(manifests: string, answer?: (task: Task) => Partial<TaskResult>) {
  const store = new ManifestStore(memorySource(manifests))
  await store.start()
  const catalog = new Catalog(store)
  close = () => store.close()
  const tasks: Task[] = []
  const deps: TeamDeps = {
    catalog,
    providerFor: () => {
      throw new Error('no selector in these tests')
    },
    runTask: (task) => {
      tasks.push(task)
      return Promise.resolve({
        task: task.id,
        outcome: 'answer',
        content: `${task.agent.name} #${String(tasks.length)}`,
        usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
        iterations: 1,
        ...answer?.(task),
      })
    },
  }
  const resource = catalog.get('Team', { namespace: 'default', name: 't' })
  if (resource === undefined) throw new Error('team t did not load')
  const run = (content = 'hi', onEvent?: (e: AgentEvent) => void) =>
    runTeam(
      resource,
      {
        id: 'run-1',
        messages: [{ role: 'user', content }],
        parameters: {},
        stream: false,
        signal: new AbortController().signal,
        ...(onEvent === undefined ? {} : { onEvent }),
      },
      deps,
    )
  return { run, tasks }
}

describe('team runs', () => {
  it('sequential: each member once in order, usage summed, the last answer the answer', async () => {
    const { run, tasks } = await setup(
      team('  strategy: sequential\n  members: [{ name: a, type: agent }, { name: b, type: agent }]'),
    )
    const result = await run()
    expect(tasks.map((t) => t.agent.name)).toEqual(['a', 'b'])
    expect(tasks.map((t) => t.id)).toEqual(['run-1.1', 'run-1.2'])
    expect(tasks[1]?.messages).toEqual([
      { role: 'assistant', name: 'a', content: 'a #1' },
      { role: 'user', content: 'hi' },
    ])
    expect(result).toMatchObject({ outcome: 'answer', content: 'b #2', iterations: 2 })
    expect(result.usage.totalTokens).toBe(4)
  })

  it('round-robin goes around until maxTurns; a huge maxTurns still stops at MAX_TURNS', async () => {
    const rr = await setup(
      team(
        '  strategy: round-robin\n  maxTurns: 5\n  members: [{ name: a, type: agent }, { name: b, type: agent }]',
      ),
    )
    expect((await rr.run()).content).toBe('a #5')
    expect(rr.tasks.map((t) => t.agent.name)).toEqual(['a', 'b', 'a', 'b', 'a'])
    await close?.()
    const endless = await setup(
      team(
        '  strategy: sequential\n  loops: true\n  maxTurns: 1000000\n  members: [{ name: a, type: agent }]',
      ),
    )
    expect((await endless.run()).iterations).toBe(MAX_TURNS)
  })

  it("graph: a member's last listed edge wins; the run ends where no edge leads on", async () => {
    const { run, tasks } = await setup(
      team(`  strategy: graph
  members: [{ name: a, type: agent }, { name: b, type: agent }, { name: c, type: agent }]
  graph: { edges: [{ from: a, to: b }, { from: a, to: c }] }`),
    )
    expect((await run()).content).toBe('c #2')
    expect(tasks.map((t) => t.agent.name)).toEqual(['a', 'c'])
  })

  it('a member that fails fails the team with its outcome; one that terminates ends it with its answer', async () => {
    const members =
      '  strategy: sequential\n  members: [{ name: a, type: agent }, { name: b, type: agent }, { name: c, type: agent }]'
    const failing = await setup(team(members), (t) =>
      t.agent.name === 'b' ? { outcome: 'timeout', content: null, error: 'b timed out' } : {},
    )
    const failed = await failing.run()
    expect(failed).toMatchObject({ outcome: 'timeout', content: null })
    expect(failed.error).toBe('member b of team/t ended with timeout: b timed out')
    expect(failing.tasks).toHaveLength(2)
    await close?.()
    const ending = await setup(team(members), (t) =>
      t.agent.name === 'b' ? { outcome: 'terminated', content: 'done early' } : {},
    )
    expect(await ending.run()).toMatchObject({ outcome: 'terminated', content: 'done early' })
    expect(ending.tasks).toHaveLength(2)
  })

  it('a sink that throws or rejects never fails the team', async () => {
    const { run } = await setup(team('  strategy: sequential\n  members: [{ name: a, type: agent }]'))
    const seen: string[] = []
    const result = await run('hi', (e) => {
      seen.push(e.type)
      if (e.type === 'team.start') throw new Error('a broken listener')
      if (e.type === 'team.turn') return Promise.reject(new Error('a broken stream')) as never
    })
    expect(result).toMatchObject({ outcome: 'answer', content: 'a #1' })
    expect(seen).toEqual(['team.start', 'team.turn', 'team.turn.complete', 'team.complete'])
  })
})

describe("the selector's words, and speakers' names", () => {
  const members = ['researcher', 'writer', 'editor'].map((name) => ({
    name,
    type: 'agent' as const,
    ref: { namespace: 'default', name },
    canDelegate: [],
  }))
  it('reads a name: exact, any case, after a cue word (the latest), else the latest mention', () => {
    expect(mentioned(members, 'writer')?.name).toBe('writer')
    expect(mentioned(members, ' Editor ')?.name).toBe('editor')
    expect(mentioned(members, 'The writer did well; next, I choose the editor.')?.name).toBe('editor')
    expect(mentioned(members, 'the writer and then the researcher')?.name).toBe('researcher')
    expect(mentioned(members, 'nobody fits')).toBeUndefined()
  })

  it("makes any role name one OpenAI accepts as a message's name", () => {
    expect(speakerName('lead writer')).toBe('lead_writer')
    expect(speakerName('a<b>|c/d\\e')).toBe('a_b_c_d_e')
    expect(speakerName('x'.repeat(100))).toHaveLength(64)
  })
})
