/** What the tool loop knows of a tool: its definition for the model, its argument validator, and how to run it. */
import type { JsonSchema } from '../../../controller/api/index.ts'
import type { ToolOutcome } from '../events.ts'
import type { ToolDefinition } from '../messages.ts'
import type { JsonValidator } from '../schema.ts'

export interface ToolContext {
  readonly signal: AbortSignal
  /** Runs another agent with one user message and returns its answer (agent-as-tool). */
  readonly runAgent: (agentKey: string, input: string, signal: AbortSignal) => Promise<string>
  /**
   * Tasks this run starts for other agents (submit_subtask, get_subtask_result, delegate). Absent where no
   * queue runs them (a bare tool loop), and those tools say so.
   */
  readonly tasks?: TaskHost
}

/** A subtask as the model sees it: its id (meaningful within the run that submitted it) and its agent. */
export interface SubmittedTask {
  readonly id: string
  /** `<namespace>/<name>` of the agent that runs it. */
  readonly agent: string
}

export type SubtaskState =
  | { readonly id: string; readonly agent: string; readonly status: 'running' }
  | { readonly id: string; readonly agent: string; readonly status: 'succeeded'; readonly content: string }
  | { readonly id: string; readonly agent: string; readonly status: 'failed'; readonly error: string }

/**
 * What the runtime does for the task tools of one run. Every method throws `TaskToolError` for a request the
 * model got wrong (an unknown agent, id or role, a limit, a cycle), with a message it can act on.
 */
export interface TaskHost {
  /** Queues a task for `agent` (`name` in the caller's namespace, or `namespace/name`) without waiting. */
  submit(agent: string, input: string): Promise<SubmittedTask>
  /** Where a subtask of this run stands; with `wait`, once it has ended (or `signal` fired). */
  result(id: string, wait: boolean, signal: AbortSignal): Promise<SubtaskState>
  /** Runs `input` on the agent of a team role this agent may delegate to, and returns its answer. */
  delegate(role: string, input: string, signal: AbortSignal): Promise<string>
}

/** The model asked for something the task tools refuse; the message says what and what to do instead. */
export class TaskToolError extends Error {
  override readonly name = 'TaskToolError'
}

export interface ToolResult {
  readonly content: string
  /** The tool failed; the model sees `content` as the error. */
  readonly isError?: boolean
  /** Ends the run after this turn; `content` becomes the answer (the `terminate` tool). */
  readonly terminate?: boolean
  /** How it went, for metrics, when `ok`/`error` says too little (a sandboxed call that timed out). */
  readonly outcome?: ToolOutcome
}

export interface PreparedTool {
  /** The name the model calls. */
  readonly name: string
  readonly definition: ToolDefinition
  /** Absent when the tool takes any arguments. */
  readonly validator: JsonValidator | undefined
  execute(args: Readonly<Record<string, unknown>>, context: ToolContext): Promise<ToolResult> | ToolResult
  /** Lets go of what the tool holds (a shared connection to its server) once its agent is dropped. */
  dispose?(): void
}

/** The agent cannot run as declared (a dependency vanished between the availability check and the run). */
export class PrepareError extends Error {
  override readonly name = 'PrepareError'
}

/** A tool the runtime implements in-process: the built-ins, and any an embedder registers. */
export interface BuiltinTool {
  readonly description: string
  readonly inputSchema: JsonSchema
  execute(args: Readonly<Record<string, unknown>>, context: ToolContext): Promise<ToolResult> | ToolResult
}
