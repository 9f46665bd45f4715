/**
 * What a run tells the world as it goes. Streaming, metrics and (later) Kubernetes Events and A2A all read
 * these; they are plain JSON so that they can cross a queue from a worker to the gateway that asked.
 */
import type { Usage } from './messages.ts'

/** How a run ended. */
export type Outcome =
  /** The model answered without calling tools. */
  | 'answer'
  /** A tool call to `terminate` ended the run. */
  | 'terminated'
  | 'max_iterations'
  /** A model call would exceed, or exceeded, limits.maxTokensPerCall. */
  | 'token_limit'
  /** The agent's daily token budget (limits.maxDailyTokens) is spent: the run was not started, or stopped. */
  | 'budget_exceeded'
  | 'timeout'
  /** The task waited in its pool's queue longer than the caller may wait (--queue-wait) and was not run. */
  | 'queue_timeout'
  /** The caller went away (client disconnect) or cancelled. */
  | 'cancelled'
  /** The final answer does not match the agent's outputSchema. */
  | 'invalid_output'
  /** The provider failed, or the runtime did. */
  | 'error'

export type ToolOutcome =
  | 'ok'
  | 'error'
  | 'invalid_arguments'
  | 'unknown_tool'
  | 'timeout'
  | 'cancelled'
  /** Sandboxed tools (sandbox/): a host not granted, the memory cap, a trap, an input or output too large. */
  | 'denied'
  | 'memory'
  | 'trap'
  | 'too_large'

export type AgentEvent =
  | { readonly type: 'agent.start'; readonly agent: string; readonly task: string }
  | { readonly type: 'llm.start'; readonly iteration: number; readonly model: string }
  /** A piece of answer text, as the provider streams it. */
  | { readonly type: 'llm.delta'; readonly text: string }
  | {
      readonly type: 'llm.complete'
      readonly iteration: number
      /** OpenTelemetry `gen_ai.provider.name`. */
      readonly provider: string
      readonly model: string
      readonly usage: Usage
      readonly seconds: number
      readonly toolCalls: number
      /** Set when the call failed. */
      readonly error?: string
    }
  | {
      readonly type: 'tool.start'
      readonly iteration: number
      readonly id: string
      readonly tool: string
      readonly arguments: string
    }
  | {
      readonly type: 'tool.complete'
      readonly iteration: number
      readonly id: string
      readonly tool: string
      readonly outcome: ToolOutcome
      readonly seconds: number
      readonly result: string
    }
  | {
      readonly type: 'agent.complete'
      readonly agent: string
      readonly task: string
      readonly outcome: Outcome
      readonly iterations: number
      readonly usage: Usage
      readonly seconds: number
    }

  /** A team run began: its members take turns (or steps) as its strategy says. */
  | {
      readonly type: 'team.start'
      /** The team as clients name it (`team/x`). */
      readonly team: string
      readonly task: string
      readonly strategy: string
      readonly members: number
    }
  /** A member's turn begins (ARK's TeamTurnStart and TeamMemberStart). */
  | {
      readonly type: 'team.turn'
      readonly team: string
      /** 1-based. Pipeline steps that run side by side have turns of their own. */
      readonly turn: number
      readonly member: string
      readonly memberType: 'agent' | 'team'
    }
  | {
      readonly type: 'team.turn.complete'
      readonly team: string
      readonly turn: number
      readonly member: string
      readonly outcome: Outcome
      readonly seconds: number
      /** Why the turn failed; absent when it succeeded. */
      readonly error?: string
    }
  | {
      readonly type: 'team.complete'
      readonly team: string
      readonly task: string
      readonly outcome: Outcome
      readonly turns: number
      readonly usage: Usage
      readonly seconds: number
      /** Why the team stopped where it did (maximum turns, the selector's choice), when it says more than the outcome. */
      readonly note?: string
    }

/**
 * Receives a run's events. It may return a promise for `llm.delta`: the run then waits for it before it
 * reads on from the model (a slow client's backpressure); other events are never waited for.
 */
export type EventSink = (event: AgentEvent) => void | Promise<void>
