/**
 * The A2A face of admission: the SDK's AgentExecutor, which turns one A2A message into one run of an ark
 * agent and the run's course into task events. The route (server.ts) has already resolved and checked the
 * target and read the request's parameters; what it found travels in the call context's state. The message's
 * text is read here (inputOf).
 *
 * A task goes submitted, then working once its pool took it, then completed (the answer is the artifact
 * `answer`), failed (why, in the status message), canceled, or rejected (a full or unreachable pool). When
 * the caller streams, answer text goes out as it comes, as appends to the `answer` artifact, and each tool
 * call shows as a working status; the last artifact event holds the whole answer (append: false), so a
 * client that missed a chunk still ends with the right text.
 *
 * A caller that goes away does not cancel its task: A2A tasks outlive connections (GetTask,
 * SubscribeToTask). CancelTask does.
 */
import type { Artifact, Message, Part, TaskStatus } from '@a2a-js/sdk'
import { Role, TaskState } from '@a2a-js/sdk'
import type {
  AgentExecutionEvent,
  AgentExecutor,
  ExecutionEventBus,
  RequestContext,
} from '@a2a-js/sdk/server'
import { AgentEvent } from '@a2a-js/sdk/server'
import type { Admission, Checked } from '../admission.ts'
import { failureOf } from '../admission.ts'
import type { AgentEvent as RunEvent } from '../runtime/events.ts'
import { succeeded } from '../runtime/task.ts'
import { TERMINAL_STATES } from './task-store.ts'

/** What the route found, for the executor: see `CallState`. */
export const CALL_STATE = 'ark.call'

export interface CallState {
  readonly checked: Checked
  readonly parameters: Readonly<Record<string, string>>
  /** SendStreamingMessage (or message/stream): stream answer text and progress. */
  readonly streaming: boolean
  /**
   * The contextId the client sent: the conversation a memory continues. Absent when it sent none (the SDK
   * then makes one up for the task, which no later message will name: nothing to remember).
   */
  readonly conversation?: string
}

const ANSWER = 'answer'
export class ArkAgentExecutor implements AgentExecutor {
  readonly #admission: Admission
  /** Runs in this process by task id: what CancelTask aborts. */
  readonly #runs = new Map<string, AbortController>()

  readonly #cancelWaitMs: number

  /** `cancelWaitMs`: how long a cancel waits for a task run elsewhere to report its end (default 10 s). */
  constructor(admission: Admission, options: { readonly cancelWaitMs?: number } = {}) {
    this.#admission = admission
    this.#cancelWaitMs = options.cancelWaitMs ?? 10_000
  }

  async execute(request: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const call = request.context.state.get(CALL_STATE) as CallState
    const { taskId, contextId } = request
    bus.publish(
      AgentEvent.task(
        request.task ?? {
          id: taskId,
          contextId,
          status: status(TaskState.TASK_STATE_SUBMITTED),
          artifacts: [],
          history: [request.userMessage],
          metadata: {},
        },
      ),
    )
    const update = (state: TaskState, text?: string): void => {
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: status(state, text === undefined ? undefined : agentMessage(taskId, contextId, text)),
          metadata: {},
        }),
      )
    }
    const artifact = (text: string, append: boolean, lastChunk: boolean): void => {
      bus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact: answerArtifact(text),
          append,
          lastChunk,
          metadata: {},
        }),
      )
    }

    const input = inputOf(request.userMessage)
    if ('error' in input) {
      update(TaskState.TASK_STATE_REJECTED, input.error)
      return
    }
    const cancel = new AbortController()
    this.#runs.set(taskId, cancel)
    try {
      // Working from the run's first sign of life (a run in this process can emit before submit returns).
      let working = false
      const started = (): void => {
        if (working) return
        working = true
        update(TaskState.TASK_STATE_WORKING)
      }
      let chunks = 0
      const onEvent = call.streaming
        ? (e: RunEvent): undefined => {
            started()
            if (e.type === 'llm.delta' && e.text !== '') artifact(e.text, chunks++ > 0, false)
            else if (e.type === 'tool.start') update(TaskState.TASK_STATE_WORKING, `calling tool ${e.tool}`)
          }
        : undefined
      const admitted = await this.#admission.submit(call.checked, {
        id: taskId,
        via: 'a2a',
        messages: [{ role: 'user', content: input.text }],
        parameters: call.parameters,
        stream: call.streaming,
        signal: cancel.signal,
        abort: (reason: unknown) => cancel.abort(reason),
        // The A2A context is the conversation: with a Memory, a later message in it sees the earlier ones.
        ...(call.conversation === undefined ? {} : { conversation: { id: call.conversation } }),
        ...(onEvent === undefined ? {} : { onEvent }),
      })
      if ('refusal' in admitted) {
        const { code, message, retryAfterSeconds } = admitted.refusal
        const retry = retryAfterSeconds === undefined ? '' : ` (retry after ${String(retryAfterSeconds)} s)`
        update(TaskState.TASK_STATE_REJECTED, `${code}: ${message}${retry}`)
        return
      }
      started()
      const result = await admitted.run.result
      if (succeeded(result)) {
        artifact(result.content ?? '', false, true)
        update(TaskState.TASK_STATE_COMPLETED)
      } else if (result.outcome === 'cancelled') {
        update(TaskState.TASK_STATE_CANCELED, 'the task was canceled')
      } else {
        const { code, message } = failureOf(result)
        update(TaskState.TASK_STATE_FAILED, `${code}: ${message}`)
      }
    } finally {
      this.#runs.delete(taskId)
    }
  }

  async cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    const run = this.#runs.get(taskId)
    if (run !== undefined) {
      // execute() sees the run end as cancelled and publishes the final status.
      run.abort(new DOMException('the A2A caller canceled the task', 'AbortError'))
      return
    }
    // Not run from here: another replica submitted it (pools on Redis). Cancel the run where it is; its
    // submitter then publishes the final state, which reaches this bus. If none comes (nothing runs it any
    // more: its replica is gone), the task ends here.
    const reached = await this.#admission.cancel(taskId).catch(() => false)
    const end = (): void => {
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId: '',
          status: status(TaskState.TASK_STATE_CANCELED, agentMessage(taskId, '', 'the task was canceled')),
          metadata: {},
        }),
      )
    }
    if (!reached) {
      end()
      return
    }
    const timer = setTimeout(() => {
      bus.off('event', onEvent)
      end()
    }, this.#cancelWaitMs)
    ;(timer as { unref?: () => void }).unref?.()
    // The real end came: the fallback is not needed.
    const onEvent = (e: AgentExecutionEvent): void => {
      if (
        e.kind === 'statusUpdate' &&
        TERMINAL_STATES.has(e.data.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)
      ) {
        clearTimeout(timer)
        bus.off('event', onEvent)
      }
    }
    bus.on('event', onEvent)
  }

  /** Tasks running in this process. */
  get running(): number {
    return this.#runs.size
  }
}

/**
 * The message as an agent reads it: its text parts, data parts as JSON, inline files of a text type as their
 * text. A file by URL is not fetched (that would let a caller make the gateway reach any address), and
 * binary content has no reader here: either is rejected, saying so.
 */
export function inputOf(message: Message): { readonly text: string } | { readonly error: string } {
  const texts: string[] = []
  for (const [i, part] of message.parts.entries()) {
    const text = partText(part)
    if (typeof text !== 'string') return { error: `message.parts[${String(i)}]: ${text.error}` }
    texts.push(text)
  }
  const text = texts.join('\n')
  return text.trim() === ''
    ? { error: 'the message holds no text: send at least one text part ({"text": "..."})' }
    : { text }
}

const TEXT_MEDIA = /^(text\/[\w.+-]+|application\/([\w.-]+\+)?(json|xml|yaml))\s*(;|$)/i

function partText(part: Part): string | { readonly error: string } {
  const content = part.content
  switch (content?.$case) {
    case 'text':
      return content.value
    case 'data':
      return JSON.stringify(content.value)
    case 'url':
      return {
        error: `file parts by URL are not fetched (${JSON.stringify(content.value.slice(0, 100))}): send the content inline, as text or as raw bytes of a text media type`,
      }
    case 'raw': {
      if (!TEXT_MEDIA.test(part.mediaType)) {
        return {
          error: `a file of media type ${JSON.stringify(part.mediaType.slice(0, 100) || 'unknown')} has no reader here: ark agents read text (text/*, application/json)`,
        }
      }
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(content.value)
      } catch {
        return { error: `the file ${JSON.stringify(part.filename.slice(0, 100))} is not valid UTF-8 text` }
      }
    }
    default:
      return { error: 'an empty part: a part holds text, data, raw bytes or a url' }
  }
}

function status(state: TaskState, message?: Message): TaskStatus {
  return { state, message, timestamp: new Date().toISOString() }
}

/** A message from the agent, of one text part: a status's words. */
export function agentMessage(taskId: string, contextId: string, text: string): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId,
    taskId,
    role: Role.ROLE_AGENT,
    parts: [{ content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' }],
    metadata: {},
    extensions: [],
    referenceTaskIds: [],
  }
}

function answerArtifact(text: string): Artifact {
  return {
    artifactId: ANSWER,
    name: ANSWER,
    description: "The agent's answer.",
    parts: [{ content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' }],
    metadata: {},
    extensions: [],
  }
}
