/**
 * A2A tasks shared by gateway replicas on Redis, end to end with real processes: two `ark gateway` replicas and
 * an `ark worker`, children of this test, a real redis-server, and the @a2a-js/sdk client. A task started on
 * one replica is followed, read, listed and canceled through the other.
 */
import type { Message, SendMessageRequest, StreamResponse, Task } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import type { Client } from '@a2a-js/sdk/client'
import { ClientFactory } from '@a2a-js/sdk/client'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const MANIFESTS = 'test/fixtures/pools'

function send(text: string, returnImmediately = false): SendMessageRequest {
  const message: Message = {
    messageId: crypto.randomUUID(),
    contextId: '',
    taskId: '',
    role: Role.ROLE_USER,
    parts: [{ content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' }],
    metadata: {},
    extensions: [],
    referenceTaskIds: [],
  }
  return {
    tenant: '',
    message,
    configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately },
    metadata: {},
  }
}

const answerOf = (task: Task): string =>
  task.artifacts
    .flatMap((a) => a.parts)
    .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
    .join('')

const finalState = (events: StreamResponse[]): TaskState | undefined => {
  const last = events.at(-1)?.payload
  return last?.$case === 'statusUpdate' ? last.value.status?.state : undefined
}

async function collect(events: AsyncGenerator<StreamResponse>): Promise<StreamResponse[]> {
  const out: StreamResponse[] = []
  for await (const e of events) out.push(e)
  return out
}

describe('A2A tasks across gateway replicas on Redis', () => {
  let redis: RedisServer
  const processes: ArkProcess[] = []
  let a: ArkProcess
  let b: ArkProcess

  beforeAll(async () => {
    redis = await startRedis()
    const env = { REDIS_URL: redis.url, ARK_REDIS_PREFIX: `a2a-${String(process.pid)}` }
    const gateway = () =>
      startArk(
        [
          'gateway',
          '-f',
          MANIFESTS,
          '--port',
          '0',
          '--probe-interval',
          '0',
          '--task-timeout',
          '30',
          '--a2a-push-hosts',
          '127.0.0.1',
        ],
        { env },
      )
    ;[a, b] = await Promise.all([gateway(), gateway()])
    processes.push(a, b)
    for (const agent of ['default/echo', 'default/slower']) {
      processes.push(
        await startArk(['worker', '--agent', agent, '-f', MANIFESTS, '--port', '0'], {
          env,
          ready: 'taking tasks',
        }),
      )
    }
  }, 60_000)

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()))
    await redis.stop()
  })

  const client = (gateway: ArkProcess, agent: string): Promise<Client> =>
    new ClientFactory().createFromUrl(`${gateway.url}/a2a/agent/${agent}/`)

  it('a task started on one replica is followed to its end, read and listed through the other', async () => {
    const onA = await client(a, 'slower')
    const onB = await client(b, 'slower')
    const started = (await onA.sendMessage(send('follow me', true))) as Task
    expect(started.status?.state).not.toBe(TaskState.TASK_STATE_COMPLETED)

    const followed = await collect(onB.resubscribeTask({ tenant: '', id: started.id }))
    expect(followed[0]?.payload?.$case).toBe('task')
    expect(finalState(followed)).toBe(TaskState.TASK_STATE_COMPLETED)

    const read = await onB.getTask({ tenant: '', id: started.id, historyLength: undefined })
    expect(read.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(answerOf(read)).toBe('You said: follow me')
    const listed = await onB.listTasks({
      tenant: '',
      contextId: started.contextId,
      status: TaskState.TASK_STATE_UNSPECIFIED,
      pageToken: '',
      statusTimestampAfter: undefined,
    })
    expect(listed.tasks.map((t) => t.id)).toEqual([started.id])
  }, 30_000)

  it('a streamed task on one replica and its follower on the other end with the same answer', async () => {
    const onA = await client(a, 'echo')
    const onB = await client(b, 'echo')
    const streamed = await collect(onA.sendMessageStream(send('calculator {"expression": "20 + 22"}')))
    expect(finalState(streamed)).toBe(TaskState.TASK_STATE_COMPLETED)
    const first = streamed[0]?.payload
    const id = first?.$case === 'task' ? first.value.id : ''
    const read = await onB.getTask({ tenant: '', id, historyLength: undefined })
    expect(answerOf(read)).toBe('calculator: 42')
  }, 30_000)

  it('a push config registered on one replica is delivered by the replica running the task', async () => {
    const received: string[] = []
    const hook = createServer((req, res) => {
      let text = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => (text += c))
      req.on('end', () => {
        received.push(text)
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${String((hook.address() as AddressInfo).port)}/hook`
      const onA = await client(a, 'slower')
      const onB = await client(b, 'slower')
      const started = (await onA.sendMessage(send('push to me', true))) as Task
      await onB.createTaskPushNotificationConfig({
        tenant: '',
        id: 'hook',
        taskId: started.id,
        url,
        token: 'tok',
        authentication: undefined,
      })
      await vi.waitFor(() => expect(received.some((r) => r.includes('TASK_STATE_COMPLETED'))).toBe(true), {
        timeout: 15_000,
        interval: 100,
      })
      expect(received.every((r) => r.includes(started.id))).toBe(true)
    } finally {
      await new Promise<void>((resolve) => hook.close(() => resolve()))
    }
  }, 30_000)

  it('CancelTask through the other replica stops the run on its worker', async () => {
    const onA = await client(a, 'slower')
    const onB = await client(b, 'slower')
    const started = (await onA.sendMessage(send('stop me', true))) as Task
    // Let the worker take it.
    await new Promise((r) => setTimeout(r, 500))
    const canceled = await onB.cancelTask({ tenant: '', id: started.id, metadata: {} })
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    // Had the run gone on, it would have completed after 5 s and its replica would have stored that.
    await new Promise((r) => setTimeout(r, 6_000))
    const later = await onA.getTask({ tenant: '', id: started.id, historyLength: undefined })
    expect(later.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    expect(answerOf(later)).toBe('')
  }, 30_000)
})
