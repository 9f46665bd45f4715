/**
 * A remote A2A agent for tests, built with @a2a-js/sdk's server (DefaultRequestHandler, the JSON-RPC
 * transport handlers) on node:http: what an A2AServer resource points at. It answers `remote says: <text>`
 * in two artifact chunks; a message containing `hang` runs until it is canceled, one containing `fail`
 * fails. It records every request's headers and every cancellation.
 */
import { createServer } from 'node:http'
import type { AgentCard, Message } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import type { AgentExecutor, ExecutionEventBus, RequestContext } from '@a2a-js/sdk/server'
import {
  AgentEvent,
  DefaultExecutionEventBusManager,
  DefaultRequestHandler,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  ServerCallContext,
} from '@a2a-js/sdk/server'
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server'

export interface RemoteA2A {
  /** The agent's base URL (its card is under /.well-known/). */
  readonly url: string
  /** Headers of every request, in order. */
  readonly headers: Record<string, string | string[] | undefined>[]
  /** Task ids canceled by a caller. */
  readonly canceled: string[]
  /** Set: card requests get this status (the server is down for discovery). */
  cardStatus: number | undefined
  /** Texts of the messages received. */
  readonly received: string[]
  close(): Promise<void>
}

export interface RemoteOptions {
  /** Serve only the v0.3 card at agent.json (an older server); default both. */
  readonly legacyOnly?: boolean
}

const text = (value: string) => ({
  content: { $case: 'text' as const, value },
  metadata: {},
  filename: '',
  mediaType: 'text/plain',
})

class Executor implements AgentExecutor {
  readonly #running = new Map<string, () => void>()
  readonly remote: { canceled: string[]; received: string[] }
  constructor(remote: { canceled: string[]; received: string[] }) {
    this.remote = remote
  }

  async execute(request: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { taskId, contextId } = request
    const input = request.userMessage.parts
      .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
      .join('')
    this.remote.received.push(input)
    bus.publish(
      AgentEvent.task({
        id: taskId,
        contextId,
        status: {
          state: TaskState.TASK_STATE_WORKING,
          message: undefined,
          timestamp: new Date().toISOString(),
        },
        artifacts: [],
        history: [request.userMessage],
        metadata: {},
      }),
    )
    const end = (state: TaskState, message?: string) =>
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: {
            state,
            message: message === undefined ? undefined : agentMessage(taskId, contextId, message),
            timestamp: new Date().toISOString(),
          },
          metadata: {},
        }),
      )
    if (input.includes('hang')) {
      await new Promise<void>((resolve) => this.#running.set(taskId, resolve))
      end(TaskState.TASK_STATE_CANCELED)
      return
    }
    if (input.includes('fail')) {
      end(TaskState.TASK_STATE_FAILED, 'the remote agent could not do it')
      return
    }
    const answer = `remote says: ${input}`
    const half = Math.ceil(answer.length / 2)
    for (const [i, piece] of [answer.slice(0, half), answer.slice(half)].entries()) {
      bus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact: {
            artifactId: 'reply',
            name: 'reply',
            description: '',
            parts: [text(piece)],
            metadata: {},
            extensions: [],
          },
          append: i > 0,
          lastChunk: i > 0,
          metadata: {},
        }),
      )
      await new Promise((r) => setTimeout(r, 5))
    }
    end(TaskState.TASK_STATE_COMPLETED)
  }

  cancelTask(taskId: string): Promise<void> {
    this.remote.canceled.push(taskId)
    this.#running.get(taskId)?.()
    this.#running.delete(taskId)
    return Promise.resolve()
  }
}

function agentMessage(taskId: string, contextId: string, value: string): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId,
    taskId,
    role: Role.ROLE_AGENT,
    parts: [text(value)],
    metadata: {},
    extensions: [],
    referenceTaskIds: [],
  }
}

export async function startRemoteA2A(options: RemoteOptions = {}): Promise<RemoteA2A> {
  const remote = {
    headers: [] as RemoteA2A['headers'],
    canceled: [] as string[],
    received: [] as string[],
    cardStatus: undefined as number | undefined,
  }
  let url = ''
  const card = (): AgentCard => ({
    name: 'remote-helper',
    description: 'A remote agent that repeats what it is told.',
    supportedInterfaces: [
      { url, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' },
      { url, protocolBinding: 'JSONRPC', protocolVersion: '0.3', tenant: '' },
    ],
    provider: undefined,
    version: '1.0.0',
    capabilities: { streaming: true, pushNotifications: false, extensions: [] },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [
      {
        id: 'repeat',
        name: 'repeat',
        description: 'Repeats what it is told',
        tags: [],
        examples: [],
        inputModes: [],
        outputModes: [],
        securityRequirements: [],
      },
    ],
    signatures: [],
  })
  const store = new InMemoryTaskStore()
  const executor = new Executor(remote)
  // One bus manager for every request: a cancel finds the bus of the run it cancels.
  const buses = new DefaultExecutionEventBusManager()
  const server = createServer((req, res) => {
    remote.headers.push({ ...req.headers })
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        if (req.method === 'GET' && path.includes('/.well-known/')) {
          if (remote.cardStatus !== undefined) {
            res.writeHead(remote.cardStatus).end()
            return
          }
          const legacy = path.endsWith('/agent.json')
          if (!legacy && options.legacyOnly === true) {
            res.writeHead(404).end()
            return
          }
          const c = card()
          const body = legacy
            ? {
                name: c.name,
                description: c.description,
                url,
                protocolVersion: '0.3.0',
                preferredTransport: 'JSONRPC',
                version: c.version,
                capabilities: { streaming: true },
                defaultInputModes: c.defaultInputModes,
                defaultOutputModes: c.defaultOutputModes,
                skills: [{ id: 'repeat', name: 'repeat', description: 'Repeats what it is told', tags: [] }],
              }
            : c
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
          return
        }
        const version = req.headers['a2a-version']
        const v1 = typeof version === 'string' && version.startsWith('1')
        const handler = new DefaultRequestHandler(card(), store, executor, buses)
        const transport = v1
          ? new JsonRpcTransportHandler(handler)
          : new LegacyJsonRpcTransportHandler(handler)
        const out = await transport.handle(
          Buffer.concat(chunks).toString('utf8'),
          new ServerCallContext({ requestedVersion: v1 ? '1.0' : '0.3' }),
        )
        if (Symbol.asyncIterator in out) {
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          for await (const event of out as AsyncGenerator) res.write(`data: ${JSON.stringify(event)}\n\n`)
          res.end()
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
        }
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  url = `http://127.0.0.1:${String(typeof address === 'object' && address !== null ? address.port : 0)}/agent`
  return Object.assign(remote, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  })
}
