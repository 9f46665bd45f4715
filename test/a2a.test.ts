/**
 * ark's agents as A2A servers, as another agent sees them: the @a2a-js/sdk client (v1.0, and its v0.3
 * transport) against `ark dev`'s gateway, with the mock model, and a fake OpenAI upstream for runs that take
 * their time. Also the v0.3 wire as a plain HTTP client sees it, and what garbage gets: JSON-RPC errors in
 * A2A's codes, never a crash.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentCard, Message, SendMessageRequest, StreamResponse, Task } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import { Client, ClientFactory } from '@a2a-js/sdk/client'
import { LegacyJsonRpcTransport } from '@a2a-js/sdk/compat/v0_3/client'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmbedded } from '../bin/embedded.ts'
import { serve, silentLogger } from '../gateway/index.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { RemoteA2A } from './fakes/a2a-remote.ts'
import { startRemoteA2A } from './fakes/a2a-remote.ts'

const manifests = (upstream: string, remote: string) => `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: upstream }
spec:
  provider: openai
  model: { value: gpt-4o }
  config: { openai: { baseUrl: { value: "${upstream}" }, apiKey: { value: sk-test } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec:
  description: Answers questions, using a calculator.
  prompt: You help.
  tools: [{ type: built-in, name: calculator }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow }
spec: { prompt: You take your time., modelRef: { name: upstream } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: greeter }
spec:
  prompt: "Greet {{.name}}."
  parameters:
    - name: name
      valueFrom: { queryParameterRef: { name: name } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: lost }
spec: { prompt: hi, modelRef: { name: missing } }
---
apiVersion: v1
kind: Namespace
metadata: { name: other }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: other }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper, namespace: other }
spec: { prompt: You help elsewhere. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: crew }
spec: { members: [{ name: helper, type: agent }], strategy: sequential }
---
# A remote A2A agent (an SDK-built server) as an ark agent, by its address.
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata:
  name: remote
  annotations: { ark.mckinsey.com/a2a-server-address: "${remote}" }
spec:
  description: Repeats what it is told, from afar.
  executionEngine: { name: a2a }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: ask-remote }
spec:
  type: agent
  description: Asks the remote agent.
  agent: { name: remote }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: caller }
spec:
  prompt: Ask the remote agent.
  tools: [{ type: custom, name: ask-remote }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata:
  name: unreachable
  annotations: { ark.mckinsey.com/a2a-server-address: "http://127.0.0.1:9/agent" }
spec:
  executionEngine: { name: a2a }
`

/** A v1.0 user message of text parts, as the SDK's types spell it. */
function userMessage(text: string, extra: Partial<Message> = {}): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: '',
    taskId: '',
    role: Role.ROLE_USER,
    parts: [{ content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' }],
    metadata: {},
    extensions: [],
    referenceTaskIds: [],
    ...extra,
  }
}

function send(
  message: Message,
  options: { metadata?: Record<string, unknown>; returnImmediately?: boolean; historyLength?: number } = {},
): SendMessageRequest {
  return {
    tenant: '',
    message,
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately: options.returnImmediately ?? false,
      ...(options.historyLength === undefined ? {} : { historyLength: options.historyLength }),
    },
    metadata: options.metadata ?? {},
  }
}

const answerOf = (task: Task): string =>
  task.artifacts
    .flatMap((a) => a.parts)
    .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
    .join('')

const statusText = (task: Task): string =>
  (task.status?.message?.parts ?? [])
    .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
    .join('')

async function collect(events: AsyncGenerator<StreamResponse>): Promise<StreamResponse[]> {
  const out: StreamResponse[] = []
  for await (const e of events) out.push(e)
  return out
}

/** The JSON-RPC error an SDK call threw: its code and message. */
async function rpcFailure(call: Promise<unknown>): Promise<{ code: number | undefined; message: string }> {
  try {
    await call
  } catch (err) {
    const e = err as { envelopeCode?: number; message: string }
    return { code: e.envelopeCode, message: e.message }
  }
  throw new Error('the call succeeded')
}

interface Receiver {
  readonly url: string
  readonly received: { headers: Record<string, string | string[] | undefined>; body: unknown }[]
  close(): Promise<void>
}

/** Where push notifications go: records each POST. */
async function startReceiver(): Promise<Receiver> {
  const received: Receiver['received'] = []
  const server = createServer((req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (text += c))
    req.on('end', () => {
      received.push({ headers: { ...req.headers }, body: JSON.parse(text) as unknown })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${String(address.port)}/hook`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('agents as A2A servers', () => {
  let upstream: FakeUpstream
  let remote: RemoteA2A
  let receiver: Receiver
  let base: string
  let close: () => Promise<void>

  beforeAll(async () => {
    upstream = await startFakeOpenAI()
    remote = await startRemoteA2A()
    const dir = await mkdtemp(join(tmpdir(), 'ark-a2a-'))
    await writeFile(join(dir, 'agents.yaml'), manifests(upstream.url, remote.url))
    receiver = await startReceiver()
    const system = await startEmbedded({
      manifests: dir,
      watch: false,
      log: silentLogger,
      probeIntervalSeconds: 0,
      // The test's receiver, on loopback, which only a loopback pattern grants.
      a2aPushHosts: ['127.0.0.1'],
    })
    await system.controlPlane.settled()
    const server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
    base = `http://127.0.0.1:${String(server.port)}`
    close = async () => {
      await server.close()
      await system.close()
      await upstream.close()
      await remote.close()
      await receiver.close()
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)

  afterAll(() => close())

  const v1 = (agent = 'helper'): Promise<Client> =>
    new ClientFactory().createFromUrl(`${base}/a2a/agent/${agent}/`)
  const v03 = async (agent = 'helper'): Promise<Client> => {
    const card = (await (
      await fetch(cardUrl(agent), { headers: { 'a2a-version': '1.0' } })
    ).json()) as AgentCard
    return new Client(new LegacyJsonRpcTransport({ endpoint: `${base}/a2a/agent/${agent}` }), card)
  }
  const cardUrl = (agent: string, file = 'agent-card.json') =>
    `${base}/a2a/agent/${agent}/.well-known/${file}`
  const rpc = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })

  describe('cards', () => {
    it('serves a v1.0 card built from the agent: interfaces for both versions, skills from its tools', async () => {
      const res = await fetch(cardUrl('helper'), { headers: { 'a2a-version': '1.0' } })
      expect(res.status).toBe(200)
      expect(res.headers.get('vary')).toBe('A2A-Version')
      const card = (await res.json()) as AgentCard
      expect(card.name).toBe('helper')
      expect(card.description).toBe('Answers questions, using a calculator.')
      expect(card.supportedInterfaces).toEqual([
        { url: `${base}/a2a/agent/helper`, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' },
        { url: `${base}/a2a/agent/helper`, protocolBinding: 'JSONRPC', protocolVersion: '0.3', tenant: '' },
      ])
      expect(card.capabilities).toMatchObject({ streaming: true })
      expect(card.skills.map((s) => s.id)).toEqual(['helper', 'tool:calculator'])
    })

    it('serves the v0.3 card without a version header and at agent.json, the v1.0 interfaces beside', async () => {
      for (const res of [await fetch(cardUrl('helper')), await fetch(cardUrl('helper', 'agent.json'))]) {
        const card = (await res.json()) as Record<string, unknown>
        expect(card).toMatchObject({
          name: 'helper',
          url: `${base}/a2a/agent/helper`,
          protocolVersion: '0.3.0',
          preferredTransport: 'JSONRPC',
          capabilities: { streaming: true },
        })
        expect(card.supportedInterfaces).toHaveLength(2)
      }
      // A namespaced agent's base URL holds its namespace.
      const other = (await (await fetch(cardUrl('other/helper', 'agent.json'))).json()) as { url: string }
      expect(other.url).toBe(`${base}/a2a/agent/other/helper`)
    })

    it('answers 404 for an agent that does not exist, and GET /a2a lists the Available agents only', async () => {
      const missing = await fetch(cardUrl('nobody'))
      expect(missing.status).toBe(404)
      expect(((await missing.json()) as { error: string }).error).toContain('no agent default/nobody')
      const list = (await (await fetch(`${base}/a2a`, { headers: { 'a2a-version': '1.0' } })).json()) as {
        agents: AgentCard[]
      }
      // `lost` has no model: not Available, not listed.
      expect(list.agents.map((a) => a.supportedInterfaces[0]?.url.slice(base.length)).sort()).toEqual([
        '/a2a/agent/caller',
        '/a2a/agent/greeter',
        '/a2a/agent/helper',
        '/a2a/agent/other/helper',
        '/a2a/agent/remote',
        '/a2a/agent/slow',
        // Availability does not probe a remote agent: a call says why it cannot be reached.
        '/a2a/agent/unreachable',
      ])
    })
  })

  describe('v1.0 through the SDK client', () => {
    it('SendMessage runs the agent, its tools included, and answers with a completed task', async () => {
      const client = await v1()
      expect(client.protocolVersion).toBe('1.0')
      const task = (await client.sendMessage(send(userMessage('calculator {"expression": "6 * 7"}')))) as Task
      expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
      expect(answerOf(task)).toBe('calculator: 42')
      expect(task.history.map((m) => m.role)).toEqual([Role.ROLE_USER])
      // historyLength 0 leaves the history out.
      const bare = (await client.sendMessage(send(userMessage('hi'), { historyLength: 0 }))) as Task
      expect(bare.history).toEqual([])
      expect(answerOf(bare)).toBe('You said: hi')
    })

    it('SendStreamingMessage streams: the task, working, the answer in appends, the whole answer, completed', async () => {
      const client = await v1()
      const events = await collect(client.sendMessageStream(send(userMessage('hello there, agent'))))
      const kinds = events.map((e) => e.payload?.$case)
      expect(kinds[0]).toBe('task')
      const states = events.flatMap((e) =>
        e.payload?.$case === 'statusUpdate' ? [e.payload.value.status?.state] : [],
      )
      expect(states).toEqual([TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED])
      const artifacts = events.flatMap((e) =>
        e.payload?.$case === 'artifactUpdate' ? [e.payload.value] : [],
      )
      expect(artifacts.length).toBeGreaterThan(2)
      const chunks = artifacts.slice(0, -1)
      expect(chunks[0]?.append).toBe(false)
      expect(chunks.slice(1).every((a) => a.append)).toBe(true)
      const streamed = chunks
        .flatMap((a) => a.artifact?.parts ?? [])
        .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
        .join('')
      expect(streamed).toBe('You said: hello there, agent')
      const last = artifacts.at(-1)
      expect(last).toMatchObject({ append: false, lastChunk: true })
      expect(last?.artifact?.parts[0]?.content).toEqual({ $case: 'text', value: streamed })
      // Working comes before any answer text.
      expect(kinds.indexOf('statusUpdate')).toBeLessThan(kinds.indexOf('artifactUpdate'))
    })

    it('GetTask and ListTasks find the tasks, by context, state and page', async () => {
      const client = await v1()
      const contextId = crypto.randomUUID()
      const ids: string[] = []
      for (const text of ['one', 'two', 'three']) {
        const task = (await client.sendMessage(send(userMessage(text, { contextId })))) as Task
        expect(task.contextId).toBe(contextId)
        ids.push(task.id)
      }
      const got = await client.getTask({ tenant: '', id: ids[1] ?? '', historyLength: undefined })
      expect(answerOf(got)).toBe('You said: two')

      const page1 = await client.listTasks({
        tenant: '',
        contextId,
        status: TaskState.TASK_STATE_UNSPECIFIED,
        pageSize: 2,
        pageToken: '',
        statusTimestampAfter: undefined,
        includeArtifacts: true,
      })
      expect(page1.totalSize).toBe(3)
      expect(page1.tasks).toHaveLength(2)
      expect(page1.nextPageToken).not.toBe('')
      const page2 = await client.listTasks({
        tenant: '',
        contextId,
        status: TaskState.TASK_STATE_COMPLETED,
        pageSize: 2,
        pageToken: page1.nextPageToken,
        statusTimestampAfter: undefined,
      })
      expect(page2.tasks).toHaveLength(1)
      expect(page2.nextPageToken).toBe('')
      // Newest first, every task once.
      expect([...page1.tasks, ...page2.tasks].map((t) => t.id).sort()).toEqual([...ids].sort())
      expect(page1.tasks.every((t) => answerOf(t) !== '')).toBe(true)
      // Another agent's endpoint does not see them.
      const greeter = await v1('greeter')
      const failure = await rpcFailure(
        greeter.getTask({ tenant: '', id: ids[0] ?? '', historyLength: undefined }),
      )
      expect(failure.code).toBe(-32001)
    })

    it('CancelTask stops a running task; a finished one is not cancelable, an unknown one not found', async () => {
      const client = await v1('slow')
      upstream.next({ hang: true })
      const before = upstream.calls.length
      const started = (await client.sendMessage(
        send(userMessage('take your time'), { returnImmediately: true }),
      )) as Task
      await waitFor('the model call', () =>
        Promise.resolve(upstream.calls.length > before ? true : undefined),
      )
      const canceled = await client.cancelTask({ tenant: '', id: started.id, metadata: {} })
      expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
      // The model call was cut: the run is stopped, not just marked.
      await waitFor('the upstream call to be cut', () =>
        Promise.resolve(upstream.calls.at(-1)?.closedEarly === true ? true : undefined),
      )
      const stored = await client.getTask({ tenant: '', id: started.id, historyLength: undefined })
      expect(stored.status?.state).toBe(TaskState.TASK_STATE_CANCELED)

      const done = (await (await v1()).sendMessage(send(userMessage('quick')))) as Task
      const helper = await v1()
      expect((await rpcFailure(helper.cancelTask({ tenant: '', id: done.id, metadata: {} }))).code).toBe(
        -32002,
      )
      expect(
        (await rpcFailure(helper.cancelTask({ tenant: '', id: 'no-such-task', metadata: {} }))).code,
      ).toBe(-32001)
    })

    it('a streaming client that leaves does not stop its task, which is stored to its end', async () => {
      const client = await v1('slow')
      upstream.next({ delayMs: 800 })
      const controller = new AbortController()
      let id = ''
      await (async () => {
        for await (const e of client.sendMessageStream(send(userMessage('leave early')), {
          signal: controller.signal,
        })) {
          if (e.payload?.$case === 'task') {
            id = e.payload.value.id
            controller.abort()
          }
        }
      })().catch(() => undefined)
      expect(id).not.toBe('')
      const done = await waitFor('the task to be stored completed', async () => {
        const task = await client.getTask({ tenant: '', id, historyLength: undefined })
        return task.status?.state === TaskState.TASK_STATE_COMPLETED ? task : undefined
      })
      expect(answerOf(done)).not.toBe('')
    })

    it('SubscribeToTask follows a running task to its end', async () => {
      const client = await v1('slow')
      upstream.next({ delayMs: 1_500 })
      const started = (await client.sendMessage(
        send(userMessage('later'), { returnImmediately: true }),
      )) as Task
      const events = await collect(client.resubscribeTask({ tenant: '', id: started.id }))
      expect(events[0]?.payload?.$case).toBe('task')
      const last = events.at(-1)?.payload
      expect(last?.$case).toBe('statusUpdate')
      expect(last?.$case === 'statusUpdate' ? last.value.status?.state : undefined).toBe(
        TaskState.TASK_STATE_COMPLETED,
      )
      const finished = await client.getTask({ tenant: '', id: started.id, historyLength: undefined })
      expect(answerOf(finished)).not.toBe('')
      // A finished task cannot be subscribed to.
      expect((await rpcFailure(collect(client.resubscribeTask({ tenant: '', id: started.id })))).code).toBe(
        -32004,
      )
    })

    it('prompt parameters come from the request metadata; a missing one is invalid params, naming it', async () => {
      const client = await v1('greeter')
      const task = (await client.sendMessage(
        send(userMessage('hello'), { metadata: { name: 'Ada' } }),
      )) as Task
      expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
      const failure = await rpcFailure(client.sendMessage(send(userMessage('hello'))))
      expect(failure.code).toBe(-32602)
      expect(failure.message).toContain('"name"')
      expect(failure.message).toContain('params.metadata')
    })

    it('an agent that is not Available is refused with its reason, before any task exists', async () => {
      const card = (await (
        await fetch(cardUrl('lost'), { headers: { 'a2a-version': '1.0' } })
      ).json()) as AgentCard
      const client = await new ClientFactory().createFromAgentCard(card)
      const failure = await rpcFailure(client.sendMessage(send(userMessage('hi'))))
      expect(failure.message).toContain('not available')
      expect(failure.message).toContain('missing')
    })

    it('a message naming a task still running is refused; a file by URL is rejected, not fetched', async () => {
      const slow = await v1('slow')
      upstream.next({ delayMs: 1_000 })
      const running = (await slow.sendMessage(send(userMessage('busy'), { returnImmediately: true }))) as Task
      const failure = await rpcFailure(
        slow.sendMessage(send(userMessage('more', { taskId: running.id, contextId: running.contextId }))),
      )
      expect(failure.code).toBe(-32004)
      expect(failure.message).toContain('still running')

      const before = upstream.calls.length
      const client = await v1()
      const task = (await client.sendMessage(
        send(
          userMessage('', {
            parts: [
              {
                content: { $case: 'url', value: 'http://169.254.169.254/latest' },
                metadata: {},
                filename: 'x',
                mediaType: 'text/plain',
              },
            ],
          }),
        ),
      )) as Task
      expect(task.status?.state).toBe(TaskState.TASK_STATE_REJECTED)
      expect(statusText(task)).toContain('not fetched')
      expect(upstream.calls.length).toBe(before)
    })
  })

  describe('push notifications and the extended card', () => {
    it('a task sends its updates to the URL given with the message, with its token', async () => {
      const client = await v1()
      const card = await client.getAgentCard()
      expect(card.capabilities?.pushNotifications).toBe(true)
      const before = receiver.received.length
      const request = send(userMessage('notify me'), { returnImmediately: true })
      const task = (await client.sendMessage({
        ...request,
        configuration: {
          acceptedOutputModes: [],
          returnImmediately: true,
          taskPushNotificationConfig: {
            tenant: '',
            id: '',
            taskId: '',
            url: receiver.url,
            token: 'push-token-1',
            authentication: undefined,
          },
        },
      })) as Task
      const last = await waitFor('the completed notification', () => {
        const mine = receiver.received.slice(before).filter((r) => JSON.stringify(r.body).includes(task.id))
        return Promise.resolve(
          mine.find((r) => JSON.stringify(r.body).includes('TASK_STATE_COMPLETED')) === undefined
            ? undefined
            : mine,
        )
      })
      expect(last.every((r) => r.headers['x-a2a-notification-token'] === 'push-token-1')).toBe(true)
    })

    it('configs are created, read, listed and deleted; a URL outside the grant is refused when given', async () => {
      const client = await v1()
      const task = (await client.sendMessage(send(userMessage('configured')))) as Task
      const config = {
        tenant: '',
        id: 'hook-1',
        taskId: task.id,
        url: receiver.url,
        token: '',
        authentication: { scheme: 'Bearer', credentials: 'c' },
      }
      const created = await client.createTaskPushNotificationConfig(config)
      expect(created.url).toBe(receiver.url)
      const read = await client.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'hook-1' })
      expect(read.id).toBe('hook-1')
      const listed = await client.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 10,
        pageToken: '',
      })
      expect(listed.configs.map((c) => c.id)).toEqual(['hook-1'])
      await client.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'hook-1' })
      expect(
        (
          await client.listTaskPushNotificationConfig({
            tenant: '',
            taskId: task.id,
            pageSize: 10,
            pageToken: '',
          })
        ).configs,
      ).toEqual([])

      const metadata = await rpcFailure(
        client.createTaskPushNotificationConfig({
          ...config,
          url: 'http://169.254.169.254/latest/meta-data',
        }),
      )
      expect(metadata.code).toBe(-32602)
      expect(metadata.message).toContain('an address nothing may reach')
      const elsewhere = await rpcFailure(
        client.sendMessage({
          ...send(userMessage('x')),
          configuration: {
            acceptedOutputModes: [],
            returnImmediately: false,
            taskPushNotificationConfig: { ...config, taskId: '', url: 'http://example.com/hook' },
          },
        }),
      )
      expect(elsewhere.code).toBe(-32602)
      expect(elsewhere.message).toContain('--a2a-push-hosts')
      // The snake_case spelling the SDK also parses is checked alike.
      const snake = await rpc(
        '/a2a/agent/helper',
        {
          jsonrpc: '2.0',
          id: 9,
          method: 'SendMessage',
          params: {
            message: { messageId: 'm-snake', role: 'ROLE_USER', parts: [{ text: 'x' }] },
            configuration: { task_push_notification_config: { url: 'http://169.254.169.254/hook' } },
          },
        },
        { 'a2a-version': '1.0' },
      )
      expect(await snake.json()).toMatchObject({ id: 9, error: { code: -32602 } })
    })

    it('GetExtendedAgentCard says the card has no extended form (no authentication yet), in both versions', async () => {
      for (const [method, headers] of [
        ['GetExtendedAgentCard', { 'a2a-version': '1.0' }],
        ['agent/getAuthenticatedExtendedCard', {}],
      ] as const) {
        const res = await rpc('/a2a/agent/helper', { jsonrpc: '2.0', id: 4, method }, headers)
        expect(await res.json()).toMatchObject({ id: 4, error: { code: -32004 } })
      }
    })
  })

  describe('v0.3', () => {
    it('the SDK v0.3 transport sends, streams, gets and cancels', async () => {
      const client = await v03()
      expect(client.protocolVersion).toBe('0.3')
      const task = (await client.sendMessage(send(userMessage('calculator {"expression": "2 + 3"}')))) as Task
      expect(answerOf(task)).toBe('calculator: 5')
      const events = await collect(client.sendMessageStream(send(userMessage('streamed'))))
      expect(events.at(-1)?.payload).toMatchObject({
        $case: 'statusUpdate',
        value: { status: { state: TaskState.TASK_STATE_COMPLETED } },
      })
      const got = await client.getTask({ tenant: '', id: task.id, historyLength: undefined })
      expect(answerOf(got)).toBe('calculator: 5')

      const slow = await v03('slow')
      upstream.next({ hang: true })
      const started = (await slow.sendMessage(send(userMessage('wait'), { returnImmediately: true }))) as Task
      const canceled = await slow.cancelTask({ tenant: '', id: started.id, metadata: {} })
      expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    })

    it('speaks the v0.3 wire to a plain HTTP client: kinds, state names, errors', async () => {
      const res = await rpc('/a2a/agent/helper', {
        jsonrpc: '2.0',
        id: 7,
        method: 'message/send',
        params: {
          message: {
            kind: 'message',
            messageId: 'm-1',
            role: 'user',
            parts: [{ kind: 'text', text: 'wire' }],
          },
        },
      })
      expect(res.status).toBe(200)
      const body = (await res.json()) as { id: number; result: Record<string, unknown> }
      expect(body.id).toBe(7)
      expect(body.result).toMatchObject({
        kind: 'task',
        status: { state: 'completed' },
        artifacts: [{ artifactId: 'answer', parts: [{ kind: 'text', text: 'You said: wire' }] }],
      })
      const got = (await (
        await rpc('/a2a/agent/helper', {
          jsonrpc: '2.0',
          id: 8,
          method: 'tasks/get',
          params: { id: body.result.id },
        })
      ).json()) as { result: { status: { state: string } } }
      expect(got.result.status.state).toBe('completed')
    })
  })

  describe('remote A2A agents as ark agents', () => {
    const openai = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 })

    it('answer on /v1/chat/completions, whole and streamed, through the SDK client', async () => {
      const done = await openai().chat.completions.create({
        model: 'agent/remote',
        messages: [
          { role: 'user', content: 'an earlier turn' },
          { role: 'assistant', content: 'ok' },
          { role: 'user', content: 'hello from afar' },
        ],
      })
      expect(done.choices[0]?.message.content).toBe('remote says: hello from afar')
      // The remote agent gets the last user message.
      expect(remote.received.at(-1)).toBe('hello from afar')

      const stream = await openai().chat.completions.create({
        model: 'agent/remote',
        messages: [{ role: 'user', content: 'stream it please' }],
        stream: true,
      })
      const pieces: string[] = []
      for await (const chunk of stream) {
        const text = chunk.choices[0]?.delta.content
        if (text !== undefined && text !== null && text !== '') pieces.push(text)
      }
      expect(pieces.length).toBeGreaterThan(1)
      expect(pieces.join('')).toBe('remote says: stream it please')
    })

    it('is a tool of another agent, called inside its loop', async () => {
      const done = await openai().chat.completions.create({
        model: 'agent/caller',
        messages: [{ role: 'user', content: 'ask-remote {"input": "from the loop"}' }],
      })
      expect(done.choices[0]?.message.content).toBe('ask-remote: remote says: from the loop')
    })

    it('a remote failure is the caller error, with the remote reason; an unreachable one says so', async () => {
      const failed = await openai()
        .chat.completions.create({
          model: 'agent/remote',
          messages: [{ role: 'user', content: 'please fail' }],
        })
        .then(
          () => undefined,
          (err: unknown) => err as { status: number; message: string },
        )
      expect(failed?.status).toBe(502)
      expect(failed?.message).toContain('could not do it')
      const down = await openai()
        .chat.completions.create({ model: 'agent/unreachable', messages: [{ role: 'user', content: 'hi' }] })
        .then(
          () => undefined,
          (err: unknown) => err as { status: number; message: string },
        )
      expect(down?.status).toBe(502)
      expect(down?.message).toContain('no A2A agent card at http://127.0.0.1:9/agent')
    })

    it('a caller that goes away cancels the remote task', async () => {
      const controller = new AbortController()
      const before = remote.received.length
      const call = openai()
        .chat.completions.create(
          { model: 'agent/remote', messages: [{ role: 'user', content: 'hang on' }], stream: true },
          { signal: controller.signal },
        )
        .then(async (s) => {
          // Read until the abort ends the stream.
          for await (const chunk of s) expect(chunk.object).toBe('chat.completion.chunk')
        })
        .catch(() => undefined)
      await waitFor('the remote to get the message', () =>
        Promise.resolve(remote.received.length > before ? true : undefined),
      )
      controller.abort()
      await call
      await waitFor('the remote task to be canceled', () =>
        Promise.resolve(remote.canceled.length > 0 ? true : undefined),
      )

      // A caller that does not stream, too: the remote task is known from the start of the call.
      const canceledBefore = remote.canceled.length
      const received = remote.received.length
      const quiet = new AbortController()
      const plain = openai()
        .chat.completions.create(
          { model: 'agent/remote', messages: [{ role: 'user', content: 'hang quietly' }] },
          { signal: quiet.signal },
        )
        .catch(() => undefined)
      await waitFor('the remote to get the second message', () =>
        Promise.resolve(remote.received.length > received ? true : undefined),
      )
      quiet.abort()
      await plain
      await waitFor('the second remote task to be canceled', () =>
        Promise.resolve(remote.canceled.length > canceledBefore ? true : undefined),
      )
    })
  })

  describe('bad input gets JSON-RPC errors, never a crash', () => {
    const codeOf = async (res: Response) =>
      ((await res.json()) as { error?: { code: number; message: string } }).error

    it('answers malformed and unknown requests in both versions with their JSON-RPC codes', async () => {
      for (const v1 of [false, true]) {
        const headers: Record<string, string> = v1 ? { 'a2a-version': '1.0' } : {}
        const call = (method: string, params: unknown) =>
          rpc('/a2a/agent/helper', { jsonrpc: '2.0', id: 1, method, params }, headers)
        expect(
          (await codeOf(await rpc('/a2a/agent/helper', '{"jsonrpc": "2.0", "id": 1,', headers)))?.code,
        ).toBe(-32700)
        // One request per POST: A2A has no batches.
        expect((await codeOf(await rpc('/a2a/agent/helper', [1, 2], headers)))?.code).toBe(-32600)
        expect((await codeOf(await call('nope/nope', {})))?.code).toBe(-32601)
        expect((await codeOf(await call(v1 ? 'SendMessage' : 'message/send', { message: 5 })))?.code).toBe(
          -32602,
        )
        expect((await codeOf(await call(v1 ? 'GetTask' : 'tasks/get', { id: 'nope' })))?.code).toBe(-32001)
      }
      const version = await codeOf(
        await rpc(
          '/a2a/agent/helper',
          { jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'x' } },
          { 'a2a-version': '2.0' },
        ),
      )
      expect(version?.code).toBe(-32009)
    })

    it('a team is an A2A server too: its card lists its members, and a send runs the team as one task', async () => {
      const card = (await (
        await fetch(`${base}/a2a/team/crew/.well-known/agent-card.json`, {
          headers: { 'a2a-version': '1.0' },
        })
      ).json()) as AgentCard
      expect(card.supportedInterfaces[0]?.url).toBe(`${base}/a2a/team/crew`)
      expect(card.skills.map((s) => s.id)).toEqual(['crew', 'member:helper'])
      const client = await new ClientFactory().createFromUrl(`${base}/a2a/team/crew/`)
      const task = (await client.sendMessage(send(userMessage('hello crew')))) as Task
      expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
      expect(answerOf(task)).toBe('You said: hello crew')
      // Streamed, the answer comes as the member gives it.
      const events = []
      for await (const e of client.sendMessageStream(send(userMessage('again')))) events.push(e)
      expect(JSON.stringify(events)).toContain('You said: again')
      const listed = (await (await fetch(`${base}/a2a`)).json()) as { teams: { name: string }[] }
      expect(listed.teams.map((t) => t.name)).toContain('crew')
      const nobody = await rpc('/a2a/team/other/nobody', {
        jsonrpc: '2.0',
        id: 6,
        method: 'message/send',
        params: {},
      })
      expect(nobody.status).toBe(404)
      expect(((await nobody.json()) as { error: { message: string } }).error.message).toContain(
        'there is no team other/nobody',
      )
      expect((await fetch(`${base}/a2a/team/nobody/.well-known/agent.json`)).status).toBe(404)
    })

    it('refuses a wrong method, an unknown agent and a body over the limit, in JSON-RPC shape', async () => {
      const get = await fetch(`${base}/a2a/agent/helper`)
      expect(get.status).toBe(405)
      expect(get.headers.get('allow')).toBe('POST')
      const nobody = await rpc('/a2a/agent/nobody', {
        jsonrpc: '2.0',
        id: 3,
        method: 'message/send',
        params: {},
      })
      expect(nobody.status).toBe(404)
      expect(await nobody.json()).toMatchObject({ id: 3, error: { code: -32000 } })
      const big = await rpc('/a2a/agent/helper', {
        jsonrpc: '2.0',
        id: 1,
        method: 'message/send',
        params: { x: 'y'.repeat(5 << 20) },
      })
      expect(big.status).toBe(413)
      expect((await codeOf(big))?.code).toBe(-32600)
    })
  })
})
