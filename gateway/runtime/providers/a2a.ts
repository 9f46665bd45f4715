/**
 * A remote A2A agent behind the Provider interface: an Agent with `executionEngine: a2a` runs through the same
 * tool loop, timeouts, cancellation, streaming and metrics as any other, with the remote agent in the place
 * of its model. A call sends the conversation's last user message and answers with the remote task's text;
 * the remote agent keeps its own tools, so the loop ends after one call.
 *
 * Through @a2a-js/sdk's client: the card at the address (`.well-known/agent-card.json`, then the v0.3
 * `agent.json`), v1.0 or v0.3 JSON-RPC as the card offers. Streaming maps the task's text to deltas; a call
 * that is cancelled (the caller left, the task timed out) cancels the remote task too.
 */
import type { Message, Part, Task } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import type { Client } from '@a2a-js/sdk/client'
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client'
import type { AgentCard } from '@a2a-js/sdk'
import { NO_USAGE, textOf } from '../messages.ts'
import type { Completion, CompletionRequest, Fetch, Provider } from '../provider.ts'
import { ProviderError } from '../provider.ts'
import { injectIntoHeaders } from '../../trace/tracing.ts'

export interface A2AProviderConfig {
  /** The remote agent's base URL (its card is under it), or its card's URL (ending in .json). */
  readonly address: string
  /** Sent with every request (card included): credentials from Secrets. */
  readonly headers: Readonly<Record<string, string>>
  /** What the remote agent is called in messages (`a2a-server/x`). */
  readonly name: string
  readonly fetch?: Fetch
}

const CARD_PATHS = ['.well-known/agent-card.json', '.well-known/agent.json']
const TERMINAL = new Set<TaskState>([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
])

/** The card of the A2A agent at `address`: agent-card.json, then agent.json; in the SDK's v1.0 form. */
export async function fetchAgentCard(
  address: string,
  options: { headers?: Readonly<Record<string, string>>; fetch?: Fetch; signal?: AbortSignal } = {},
): Promise<{ card: AgentCard; url: string }> {
  const fetchImpl = withHeaders(options.fetch ?? fetch, options.headers ?? {}, options.signal)
  const resolver = new DefaultAgentCardResolver({ fetchImpl, legacyCompat: { enabled: true } })
  const urls = address.endsWith('.json') ? [address] : CARD_PATHS.map((p) => new URL(p, baseOf(address)).href)
  const failures: string[] = []
  for (const url of urls) {
    try {
      return { card: await resolver.resolve(url, ''), url }
    } catch (err) {
      failures.push(err instanceof Error ? err.message : String(err))
    }
  }
  throw new ProviderError(`no A2A agent card at ${address}: ${failures.join('; ')}`, {
    code: 'card_not_found',
  })
}

/**
 * What discovery keeps of the card at `address` (controller/reconcile/a2a-discovery.ts): its name,
 * description and skills, and the base URL it was found under (or the card's URL when given one).
 */
export async function discoverAgentCard(
  address: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<{
  name: string
  description: string
  skills: { name: string; description: string }[]
  address: string
}> {
  const { card, url } = await fetchAgentCard(address, { headers, signal })
  const base = CARD_PATHS.reduce((at, path) => (at.endsWith(path) ? at.slice(0, -path.length - 1) : at), url)
  return {
    name: card.name,
    description: card.description,
    skills: card.skills.map((s) => ({ name: s.name, description: s.description })),
    address: base,
  }
}

export function createA2AProvider(config: A2AProviderConfig): Provider {
  let client: Promise<{ remote: Client; streaming: boolean }> | undefined
  const connect = (): Promise<{ remote: Client; streaming: boolean }> => {
    client ??= (async () => {
      const fetchImpl = withHeaders(config.fetch ?? fetch, config.headers)
      const { card } = await fetchAgentCard(config.address, {
        headers: config.headers,
        ...optionalFetch(config),
      })
      const factory = new ClientFactory({
        transports: [new JsonRpcTransportFactory({ fetchImpl, legacyCompat: { enabled: true } })],
      })
      return {
        remote: await factory.createFromAgentCard(card),
        streaming: card.capabilities?.streaming === true,
      }
    })()
    // A failed connection is tried again by the next call (the remote agent may be back).
    client.catch(() => (client = undefined))
    return client
  }

  return {
    provider: 'a2a',
    model: config.name,
    async probe(signal) {
      await fetchAgentCard(config.address, { headers: config.headers, signal, ...optionalFetch(config) })
    },
    async complete(request: CompletionRequest): Promise<Completion> {
      const text = lastUserText(request)
      const { remote, streaming } = await connect()
      const params = {
        tenant: '',
        message: userMessage(text),
        configuration: undefined,
        metadata: {},
      }
      let taskId: string | undefined
      const cancelRemote = () => {
        if (taskId !== undefined)
          void remote.cancelTask({ tenant: '', id: taskId, metadata: {} }).catch(() => undefined)
      }
      request.signal.addEventListener('abort', cancelRemote, { once: true })
      try {
        let answer: string
        // Streamed whenever the remote streams, even for a caller that does not: the stream names the task at
        // once, so that a run cancelled meanwhile cancels it there too. A blocking call names it at its end.
        if (!streaming) {
          const result = await remote.sendMessage(params, { signal: request.signal })
          if ('role' in result) answer = messageText(result)
          else {
            taskId = result.id
            answer = taskAnswer(result, config.name)
          }
        } else {
          answer = await streamed(remote, params, request, (id) => (taskId = id), config.name)
        }
        return {
          message: { role: 'assistant', content: answer },
          // The remote agent does not say what its models used.
          usage: NO_USAGE,
          finishReason: 'stop',
        }
      } catch (err) {
        if (request.signal.aborted) throw request.signal.reason
        if (err instanceof ProviderError) throw err
        throw new ProviderError(
          `the A2A agent ${config.name} failed: ${err instanceof Error ? err.message : String(err)}`,
          {
            code: 'a2a_error',
            cause: err,
          },
        )
      } finally {
        request.signal.removeEventListener('abort', cancelRemote)
      }
    },
  }
}

/** Follows a streamed task: its answer text to onDelta as it grows, the whole text at its end. */
async function streamed(
  remote: Client,
  params: Parameters<Client['sendMessageStream']>[0],
  request: CompletionRequest,
  started: (taskId: string) => void,
  name: string,
): Promise<string> {
  const onDelta = request.onDelta ?? (() => undefined)
  // What the caller has been sent; an artifact that replaces (append: false) sends only what it adds.
  let sent = ''
  let task: Task | undefined
  const artifacts = new Map<string, string>()
  for await (const event of remote.sendMessageStream(params, { signal: request.signal })) {
    const payload = event.payload
    switch (payload?.$case) {
      case 'message':
        return messageText(payload.value)
      case 'task':
        task = payload.value
        started(task.id)
        break
      case 'artifactUpdate': {
        const update = payload.value
        const id = update.artifact?.artifactId ?? ''
        const piece = partsText(update.artifact?.parts ?? [])
        const before = artifacts.get(id) ?? ''
        artifacts.set(id, update.append ? before + piece : piece)
        const whole = [...artifacts.values()].join('')
        if (whole.startsWith(sent) && whole.length > sent.length) {
          const delta = whole.slice(sent.length)
          sent = whole
          await onDelta(delta)
        }
        break
      }
      case 'statusUpdate': {
        const status = payload.value.status
        if (task !== undefined && status !== undefined) task = { ...task, status }
        if (status !== undefined && TERMINAL.has(status.state)) {
          const done: Task = {
            ...(task ?? {
              id: payload.value.taskId,
              contextId: payload.value.contextId,
              history: [],
              metadata: {},
            }),
            status,
            artifacts: [...artifacts].map(([artifactId, text]) => ({
              artifactId,
              name: '',
              description: '',
              parts: [
                {
                  content: { $case: 'text', value: text },
                  metadata: {},
                  filename: '',
                  mediaType: 'text/plain',
                },
              ],
              metadata: {},
              extensions: [],
            })),
          }
          return taskAnswer(done, name)
        }
        break
      }
      default:
        break
    }
  }
  if (task !== undefined && task.status !== undefined && TERMINAL.has(task.status.state))
    return taskAnswer(task, name)
  throw new ProviderError(`the A2A agent ${name} ended its stream before its task ended`, {
    code: 'a2a_incomplete',
  })
}

/** A finished task's answer: its artifacts' text, else its status message's; an unsuccessful end throws. */
function taskAnswer(task: Task, name: string): string {
  const state = task.status?.state
  const said = messageText(task.status?.message)
  switch (state) {
    case TaskState.TASK_STATE_COMPLETED: {
      const text = task.artifacts.map((a) => partsText(a.parts)).join('')
      return text !== '' ? text : said
    }
    case TaskState.TASK_STATE_INPUT_REQUIRED:
    case TaskState.TASK_STATE_AUTH_REQUIRED:
      throw new ProviderError(
        `the A2A agent ${name} asks for ${state === TaskState.TASK_STATE_INPUT_REQUIRED ? 'more input' : 'authentication'}, which ark does not relay${said === '' ? '' : `: ${said}`}`,
        { code: 'a2a_input_required' },
      )
    default:
      throw new ProviderError(
        `the A2A agent ${name} ended its task ${stateName(state)}${said === '' ? '' : `: ${said}`}`,
        { code: 'a2a_task_failed' },
      )
  }
}

function stateName(state: TaskState | undefined): string {
  switch (state) {
    case TaskState.TASK_STATE_FAILED:
      return 'failed'
    case TaskState.TASK_STATE_CANCELED:
      return 'canceled'
    case TaskState.TASK_STATE_REJECTED:
      return 'rejected'
    default:
      return `in state ${String(state)}`
  }
}

function lastUserText(request: CompletionRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i]
    if (m?.role === 'user') return textOf(m.content)
  }
  throw new ProviderError('there is no user message to send to the A2A agent', { code: 'invalid_request' })
}

function userMessage(text: string): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: '',
    taskId: '',
    role: Role.ROLE_USER,
    parts: [{ content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' }],
    metadata: {},
    extensions: [],
    referenceTaskIds: [],
  }
}

function messageText(message: Message | undefined): string {
  return message === undefined ? '' : partsText(message.parts)
}

function partsText(parts: readonly Part[]): string {
  return parts
    .map((p) => {
      const c = p.content
      if (c?.$case === 'text') return c.value
      if (c?.$case === 'data') return JSON.stringify(c.value)
      return ''
    })
    .join('')
}

/** `address` as a base URL that relative paths go under (a trailing slash kept or added). */
function baseOf(address: string): string {
  return address.endsWith('/') ? address : `${address}/`
}

function withHeaders(
  base: Fetch,
  headers: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): typeof fetch {
  const wrapped = (input: string | URL | Request, init: RequestInit = {}) => {
    const merged = new Headers(init.headers)
    for (const [k, v] of Object.entries(headers)) merged.set(k, v)
    // The model call's span, when tracing is on: the remote agent's spans join the caller's trace.
    injectIntoHeaders(merged)
    // No redirects: they would carry the Secret-held headers to wherever the remote sends them.
    return base(input, {
      ...init,
      headers: merged,
      redirect: 'error',
      ...(signal === undefined ? {} : { signal: init.signal ?? signal }),
    })
  }
  return wrapped
}

function optionalFetch(config: A2AProviderConfig): { fetch?: Fetch } {
  return config.fetch === undefined ? {} : { fetch: config.fetch }
}
