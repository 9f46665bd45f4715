/** What the tool loop knows of a tool: its definition for the model, its argument validator, and how to run it. */
import type { JsonSchema } from '../../../controller/api/index.ts'
import type { ToolOutcome } from '../events.ts'
import type { ToolDefinition } from '../messages.ts'
import type { JsonValidator } from '../schema.ts'

export interface ToolContext {
  readonly signal: AbortSignal
  /** Runs another agent with one user message and returns its answer (agent-as-tool). */
  readonly runAgent: (agentKey: string, input: string, signal: AbortSignal) => Promise<string>
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
}

/** A tool the runtime implements in-process: the built-ins, and any an embedder registers. */
export interface BuiltinTool {
  readonly description: string
  readonly inputSchema: JsonSchema
  execute(args: Readonly<Record<string, unknown>>, context: ToolContext): Promise<ToolResult> | ToolResult
}
