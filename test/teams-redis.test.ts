/**
 * Teams and memory when pools live on Redis: two real `ark gateway` replicas, an `ark worker` per member
 * agent and a real redis-server. A team's turns run on its members' workers (the gateway that admitted it
 * has no pools of its own); cancelling the team cancels the member running on its worker and the members
 * after it never start; a conversation begun through one replica is continued through the other.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Task } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import { ClientFactory } from '@a2a-js/sdk/client'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const manifests = (upstream: string) => `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: slow }
spec:
  provider: mock
  model: { value: mock-slow }
  config: { mock: { properties: { latencyMs: { value: "5000" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: scripted }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config: { openai: { baseUrl: { value: "${upstream}" }, apiKey: { value: sk-test } } }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkMemory
metadata: { name: default }
spec: { backend: in-context }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: first }
spec: { prompt: I go first. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: second }
spec: { prompt: I go second., modelRef: { name: scripted } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: sleeper }
spec: { prompt: I am slow., modelRef: { name: slow } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: pair }
spec: { strategy: sequential, members: [{ name: first, type: agent }, { name: second, type: agent }] }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: slow }
spec: { strategy: sequential, members: [{ name: sleeper, type: agent }, { name: first, type: agent }] }
`

describe('teams and memory across gateway replicas and workers on Redis', () => {
  let redis: RedisServer
  let upstream: FakeUpstream
  let dir: string
  const processes: ArkProcess[] = []
  let a: ArkProcess
  let b: ArkProcess
  const workers: Record<string, ArkProcess> = {}

  beforeAll(async () => {
    redis = await startRedis()
    upstream = await startFakeOpenAI()
    dir = await mkdtemp(join(tmpdir(), 'ark-teams-redis-'))
    await writeFile(join(dir, 'all.yaml'), manifests(upstream.url))
    const env = { REDIS_URL: redis.url, ARK_REDIS_PREFIX: `teams-${String(process.pid)}` }
    const gateway = () =>
      startArk(['gateway', '-f', dir, '--port', '0', '--probe-interval', '0', '--task-timeout', '30'], {
        env,
      })
    ;[a, b] = await Promise.all([gateway(), gateway()])
    processes.push(a, b)
    for (const agent of ['first', 'second', 'sleeper']) {
      const worker = await startArk(['worker', '--agent', `default/${agent}`, '-f', dir, '--port', '0'], {
        env,
        ready: 'taking tasks',
      })
      workers[agent] = worker
      processes.push(worker)
    }
  }, 90_000)

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()))
    await redis.stop()
    await upstream.close()
    await rm(dir, { recursive: true, force: true })
  })

  const client = (gateway: ArkProcess) =>
    new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'none', maxRetries: 0 })
  const sentTo = () =>
    upstream.calls
      .filter((c) => c.path.endsWith('/chat/completions'))
      .map((c) =>
        (c.body as { messages: { role: string; content: string | null; name?: string }[] }).messages.map(
          (m) => `${m.role}${m.name === undefined ? '' : `(${m.name})`}: ${m.content ?? ''}`,
        ),
      )
  const runs = async (worker: ArkProcess, agent: string, outcome: string): Promise<number> => {
    const text = await (await fetch(`${worker.url}/metrics`)).text()
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`ark_agent_runs_total{agent="default/${agent}",outcome="${outcome}"}`))
    return line === undefined ? 0 : Number(line.split(' ').at(-1))
  }

  /** Until the sleeper runs a task on its worker (its model takes 5 s). */
  const sleeperRunning = () =>
    vi.waitFor(
      async () =>
        expect(await (await fetch(`${workers.sleeper?.url ?? ''}/metrics`)).text()).toMatch(
          /ark_pool_in_flight\{pool="default\/sleeper"\} 1/,
        ),
      { timeout: 10_000, interval: 50 },
    )
  /** Until the sleeper's worker has counted more than `before` cancelled runs. */
  const sleeperCancelled = (before: number) =>
    vi.waitFor(
      async () =>
        expect(await runs(workers.sleeper as ArkProcess, 'sleeper', 'cancelled')).toBeGreaterThan(before),
      { timeout: 10_000, interval: 50 },
    )

  it("a team's turns run on its members' workers, each seeing the turns before", async () => {
    upstream.calls.length = 0
    const answer = await client(a).chat.completions.create({
      model: 'team/pair',
      messages: [{ role: 'user', content: 'hello pair' }],
    })
    expect(answer.choices[0]?.message.content).toBe('You said: hello pair')
    expect(sentTo()).toEqual([
      ['system: I go second.', 'assistant(first): You said: hello pair', 'user: hello pair'],
    ])
    expect(await runs(workers.first as ArkProcess, 'first', 'answer')).toBe(1)
    expect(await runs(workers.second as ArkProcess, 'second', 'answer')).toBe(1)
  })

  it('cancelling a team cancels its running member on its worker; the next member never starts', async () => {
    const before = await runs(workers.first as ArkProcess, 'first', 'answer')
    const cancel = new AbortController()
    const call = client(b)
      .chat.completions.create(
        { model: 'team/slow', messages: [{ role: 'user', content: 'take your time' }] },
        { signal: cancel.signal },
      )
      .catch((e: unknown) => e)
    // The sleeper is on its worker, waiting out its model's 5 s.
    await sleeperRunning()
    cancel.abort()
    expect(await call).toBeInstanceOf(Error)
    await sleeperCancelled(0)
    // Past the sleeper's 5 s: nothing went on to the next member.
    await new Promise((r) => setTimeout(r, 5500))
    expect(await runs(workers.sleeper as ArkProcess, 'sleeper', 'answer')).toBe(0)
    expect(await runs(workers.first as ArkProcess, 'first', 'answer')).toBe(before)
  }, 30_000)

  it("A2A CancelTask through the other replica reaches a team's running member on its worker", async () => {
    const before = await runs(workers.sleeper as ArkProcess, 'sleeper', 'cancelled')
    const onA = await new ClientFactory().createFromUrl(`${a.url}/a2a/team/slow/`)
    const onB = await new ClientFactory().createFromUrl(`${b.url}/a2a/team/slow/`)
    const started = (await onA.sendMessage({
      tenant: '',
      message: {
        messageId: crypto.randomUUID(),
        contextId: '',
        taskId: '',
        role: Role.ROLE_USER,
        parts: [
          {
            content: { $case: 'text', value: 'take your time' },
            metadata: {},
            filename: '',
            mediaType: 'text/plain',
          },
        ],
        metadata: {},
        extensions: [],
        referenceTaskIds: [],
      },
      configuration: {
        acceptedOutputModes: [],
        taskPushNotificationConfig: undefined,
        returnImmediately: true,
      },
      metadata: {},
    })) as Task
    await sleeperRunning()
    await onB.cancelTask({ tenant: '', id: started.id, metadata: {} })
    await sleeperCancelled(before)
    await vi.waitFor(
      async () => {
        const now = await onA.getTask({ tenant: '', id: started.id, historyLength: 0 })
        expect(now.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
      },
      { timeout: 10_000, interval: 100 },
    )
  }, 30_000)

  it('a conversation begun through one replica goes on through the other', async () => {
    upstream.calls.length = 0
    const id = `redis-${crypto.randomUUID()}`
    const turn = (gateway: ArkProcess, content: string) =>
      client(gateway).chat.completions.create({
        model: 'agent/second',
        messages: [{ role: 'user', content }],
        metadata: { conversation_id: id },
      })
    await turn(a, 'I live in Lisbon')
    await turn(b, 'where do I live?')
    expect(sentTo()[1]).toEqual([
      'system: I go second.',
      'user: I live in Lisbon',
      'assistant: You said: I live in Lisbon',
      'user: where do I live?',
    ])
  })
})
