/**
 * A task: one request for one agent, as it crosses the queue from the gateway to a pool worker. Plain JSON,
 * so that the Redis Streams queue can carry it unchanged.
 */
import type { ObjectRef, TurnLimits } from '../../controller/api/index.ts'
import type { TraceCarrier } from '../trace/tracing.ts'
import type { Outcome } from './events.ts'
import type { ChatMessage, Usage } from './messages.ts'
import { NO_USAGE } from './messages.ts'

export interface Task {
  readonly id: string
  readonly agent: ObjectRef
  /** The conversation the caller sent (the agent's system prompt is added by the runtime). */
  readonly messages: readonly ChatMessage[]
  /**
   * Earlier turns that come before `messages`: a remembered conversation, or a team's history. The runtime
   * keeps its newest whole exchanges that fit the agent's token budget with the system prompt and tools.
   */
  readonly history?: readonly ChatMessage[]
  /** Tighter bounds than the agent's own for this task: a team role's limits on its member's turn. */
  readonly limits?: TurnLimits
  /** Values for the agent's queryParameterRef parameters. */
  readonly parameters: Readonly<Record<string, string>>
  /** Stream answer text as it is produced. */
  readonly stream: boolean
  /** How many agents deep this task runs (agent-as-tool); bounds recursion. */
  readonly depth: number
  /**
   * The agents (`<namespace>/<name>`) that handed work down to this task, outermost first, absent for a task a
   * client sent: `delegate` refuses to hand work back to one of them (a cycle would only bounce until a limit).
   */
  readonly chain?: readonly string[]
  /** The trace context of whoever queued it, when tracing is on (trace/tracing.ts). */
  readonly trace?: TraceCarrier
}

export interface TaskResult {
  readonly task: string
  readonly outcome: Outcome
  readonly content: string | null
  readonly usage: Usage
  readonly iterations: number
  /** Why the task failed, in words for the caller; absent on success. */
  readonly error?: string
  /** Outcome `budget_exceeded`: when the agent's daily budget resets (the next UTC midnight, ISO 8601). */
  readonly resetsAt?: string
}

export function succeeded(result: TaskResult): boolean {
  return result.outcome === 'answer' || result.outcome === 'terminated'
}

/** The result of a task that never ran its loop (refused, cancelled while waiting, runtime failure). */
export function notRun(task: Pick<Task, 'id'>, outcome: Outcome, error: string): TaskResult {
  return { task: task.id, outcome, content: null, usage: NO_USAGE, iterations: 0, error }
}
