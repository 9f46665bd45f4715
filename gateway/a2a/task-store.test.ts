/**
 * The A2A task stores, memory and Redis (a real redis-server), held to one contract: scoped by agent, expiring
 * after their retention, and paged as ListTasks pages.
 */
import type { Task } from '@a2a-js/sdk'
import { TaskState } from '@a2a-js/sdk'
import type { TaskStore } from '@a2a-js/sdk/server'
import { ServerCallContext } from '@a2a-js/sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RedisServer } from '../../test/redis-server.ts'
import { startRedis } from '../../test/redis-server.ts'
import { silentLogger } from '../log.ts'
import { RedisA2A } from './redis.ts'
import type { TaskRetention } from './task-store.ts'
import { AGENT_SCOPE, MemoryTaskStore } from './task-store.ts'

const scope = (agent: string) => new ServerCallContext({ state: new Map([[AGENT_SCOPE, agent]]) })

function task(id: string, contextId: string, state: TaskState, timestamp: string): Task {
  return {
    id,
    contextId,
    status: { state, message: undefined, timestamp },
    artifacts: [
      { artifactId: 'answer', name: 'answer', description: '', parts: [], metadata: {}, extensions: [] },
    ],
    history: [],
    metadata: {},
  }
}

const list = (store: TaskStore, agent: string, params: Record<string, unknown> = {}) =>
  store.list(
    {
      tenant: '',
      contextId: '',
      status: TaskState.TASK_STATE_UNSPECIFIED,
      pageToken: '',
      statusTimestampAfter: undefined,
      ...params,
    },
    scope(agent),
  )

let redis: RedisServer
const opened: RedisA2A[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await Promise.all(opened.map((o) => o.close()))
  await redis.stop()
})

const stores: [string, (retention: TaskRetention) => TaskStore][] = [
  ['memory', (retention) => new MemoryTaskStore(retention)],
  [
    'redis',
    (retention) => {
      const shared = new RedisA2A({
        url: redis.url,
        prefix: `ts-${crypto.randomUUID()}`,
        retention,
        log: silentLogger,
      })
      opened.push(shared)
      return shared.store
    },
  ],
]

describe.each(stores)('%s task store', (_, make) => {
  it('keeps each agent to its own tasks', async () => {
    const store = make({})
    await store.save(
      task('t1', 'c1', TaskState.TASK_STATE_COMPLETED, '2026-12-06T10:00:00.000Z'),
      scope('Agent/default/a'),
    )
    expect((await store.load('t1', scope('Agent/default/a')))?.contextId).toBe('c1')
    expect(await store.load('t1', scope('Agent/default/b'))).toBeUndefined()
    expect((await list(store, 'Agent/default/b')).tasks).toEqual([])
    expect((await list(store, 'Agent/default/a')).tasks.map((t) => t.id)).toEqual(['t1'])
  })

  it('pages newest first, filters by context, state and time, and leaves artifacts out unless asked', async () => {
    const store = make({})
    const agent = 'Agent/default/pager'
    for (let i = 0; i < 5; i++) {
      await store.save(
        task(
          `t${String(i)}`,
          i % 2 === 0 ? 'even' : 'odd',
          i === 4 ? TaskState.TASK_STATE_WORKING : TaskState.TASK_STATE_COMPLETED,
          `2026-12-06T10:00:0${String(i)}.000Z`,
        ),
        scope(agent),
      )
    }
    const first = await list(store, agent, { pageSize: 2 })
    expect(first.tasks.map((t) => t.id)).toEqual(['t4', 't3'])
    expect(first.totalSize).toBe(5)
    expect(first.tasks[0]?.artifacts).toEqual([])
    const second = await list(store, agent, { pageSize: 2, pageToken: first.nextPageToken })
    expect(second.tasks.map((t) => t.id)).toEqual(['t2', 't1'])
    const third = await list(store, agent, { pageSize: 2, pageToken: second.nextPageToken })
    expect(third.tasks.map((t) => t.id)).toEqual(['t0'])
    expect(third.nextPageToken).toBe('')

    expect((await list(store, agent, { contextId: 'odd' })).tasks.map((t) => t.id)).toEqual(['t3', 't1'])
    expect(
      (await list(store, agent, { status: TaskState.TASK_STATE_WORKING })).tasks.map((t) => t.id),
    ).toEqual(['t4'])
    expect(
      (await list(store, agent, { statusTimestampAfter: '2026-12-06T10:00:02.000Z' })).tasks.map((t) => t.id),
    ).toEqual(['t4', 't3'])
    expect((await list(store, agent, { includeArtifacts: true })).tasks[0]?.artifacts).toHaveLength(1)
    await expect(list(store, agent, { pageToken: 'not-a-token' })).rejects.toThrow(/pageToken/)
  })

  it('forgets a task once its retention has passed since its last change', async () => {
    const store = make({ ttlMs: 300 })
    const agent = 'Agent/default/brief'
    await store.save(
      task('gone', 'c', TaskState.TASK_STATE_COMPLETED, '2026-12-06T10:00:00.000Z'),
      scope(agent),
    )
    expect(await store.load('gone', scope(agent))).toBeDefined()
    await new Promise((r) => setTimeout(r, 400))
    expect(await store.load('gone', scope(agent))).toBeUndefined()
    expect((await list(store, agent)).tasks).toEqual([])
  })
})

describe('memory task store', () => {
  it('holds at most maxTasks, dropping the least recently changed', async () => {
    const store = new MemoryTaskStore({ maxTasks: 2 })
    const at = scope('Agent/default/a')
    await store.save(task('old', 'c', TaskState.TASK_STATE_COMPLETED, '2026-12-06T10:00:00.000Z'), at)
    await store.save(task('mid', 'c', TaskState.TASK_STATE_WORKING, '2026-12-06T10:00:01.000Z'), at)
    // A change makes `old` the most recent.
    await store.save(task('old', 'c', TaskState.TASK_STATE_COMPLETED, '2026-12-06T10:00:02.000Z'), at)
    await store.save(task('new', 'c', TaskState.TASK_STATE_COMPLETED, '2026-12-06T10:00:03.000Z'), at)
    expect(store.size).toBe(2)
    expect(await store.load('mid', at)).toBeUndefined()
    expect(await store.load('old', at)).toBeDefined()
  })
})
