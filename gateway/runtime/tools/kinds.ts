/**
 * The kinds of tool the runtime can run, in a table keyed by a Tool's type: each entry makes the PreparedTool of
 * one tool from its spec. A new kind of tool (MCP, A2A) is a new entry; preparing an agent only looks them up,
 * and a type without an entry is one this runtime cannot run (the agent is refused with that reason).
 */
import type {
  InlineMcpServer,
  JsonSchema,
  ObjectRef,
  ToolImpl,
  ToolType,
} from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { Sandbox } from '../../../sandbox/index.ts'
import type { ToolDefinition } from '../messages.ts'
import { compileJsonSchema } from '../schema.ts'
import { ToolSpecError, wasmTool, webhookTool } from './sandboxed.ts'
import type { BuiltinTool, PreparedTool, ToolContext, ToolResult } from './tool.ts'
import { PrepareError } from './tool.ts'

/** What making a tool may read and use. */
export interface ToolEnvironment {
  readonly catalog: Catalog
  /** The agent's namespace: where the tool's references and values resolve. */
  readonly namespace: string
  readonly builtins: Readonly<Record<string, BuiltinTool>>
  /** Runs webhook and `wasm` tools; without it, agents that have them cannot run. */
  readonly sandbox?: Sandbox
  /** The agent being prepared. */
  readonly agent: ObjectRef
  /** Ends a preparation that takes too long (a tool server that does not answer). */
  readonly signal: AbortSignal
  /**
   * What the tool was made from changed outside the catalog (its server's tool list): the runtime prepares the
   * agent again. Safe to call at any time, any number of times.
   */
  readonly stale: () => void
}

/** A tool as the agent shows it to the model: its name, and what the Tool or the agent says of it. */
export interface ToolFace {
  readonly name: string
  readonly description: string | undefined
  readonly inputSchema: JsonSchema | undefined
}

/** Makes the tool of one Tool type. Throws PrepareError (or ToolSpecError) when the spec cannot work. */
export type ToolKind<T extends ToolType> = (
  impl: Extract<ToolImpl, { readonly type: T }>,
  face: ToolFace,
  env: ToolEnvironment,
) => PreparedTool | Promise<PreparedTool>

export type ToolKinds = { readonly [T in ToolType]?: ToolKind<T> }

/** Tools that come as a set, with what they hold between them (an MCP server's connection). */
export interface ToolSet {
  readonly tools: readonly PreparedTool[]
  dispose(): void
}

/** Makes every tool of an MCP server an agent declares itself (ArkAgent `mcpServers`). */
export type ServerTools = (server: InlineMcpServer, env: ToolEnvironment) => Promise<ToolSet>

/** Makes the tool of `impl` through its kind's entry in `kinds`. */
export async function makeTool(
  kinds: ToolKinds,
  impl: ToolImpl,
  face: ToolFace,
  env: ToolEnvironment,
): Promise<PreparedTool> {
  // The table is keyed by the same type that discriminates `impl`; TypeScript cannot follow that correlation.
  const kind = kinds[impl.type] as ToolKind<typeof impl.type> | undefined
  if (kind === undefined)
    throw new PrepareError(`tool ${face.name} is of type ${impl.type}, which this runtime cannot run yet`)
  try {
    return await kind(impl, face, env)
  } catch (err) {
    if (err instanceof ToolSpecError) throw new PrepareError(`tool ${face.name}: ${err.message}`)
    throw err
  }
}

const builtin: ToolKind<'builtin'> = (impl, face, env) => {
  const b = env.builtins[impl.builtin.name]
  if (b === undefined) throw new PrepareError(`there is no built-in tool "${impl.builtin.name}"`)
  return fromBuiltin(face.name, { ...b, inputSchema: face.inputSchema ?? b.inputSchema }, face.description)
}

const AGENT_TOOL_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { input: { type: 'string', description: 'The task for the agent, in plain words.' } },
  required: ['input'],
}

/** Another agent as a tool: its answer is the tool result. */
const agent: ToolKind<'agent'> = (impl, face) => agentTool(face, impl.agent)

function agentTool(face: ToolFace, target: ObjectRef): PreparedTool {
  const schema = face.inputSchema ?? AGENT_TOOL_SCHEMA
  const key = `${target.namespace}/${target.name}`
  return {
    name: face.name,
    definition: definition(
      face.name,
      face.description ?? `Asks the agent ${target.name} to do a task.`,
      schema,
    ),
    validator: compileJsonSchema(schema),
    async execute(args, context: ToolContext): Promise<ToolResult> {
      const input = typeof args.input === 'string' ? args.input : JSON.stringify(args)
      return { content: await context.runAgent(key, input, context.signal) }
    },
  }
}

/** ARK `http` Tools and ArkAgent inline webhooks: the built-in webhook plugin, in the sandbox. */
const http: ToolKind<'http'> = (impl, face, env) =>
  webhookTool(
    { ...face, description: face.description ?? `Calls the webhook ${face.name}.` },
    impl.http,
    env.namespace,
    env.catalog,
    sandboxOf(face, env),
  )

const wasm: ToolKind<'wasm'> = (impl, face, env) =>
  wasmTool(
    { ...face, description: face.description ?? `Calls the Wasm tool ${face.name}.` },
    impl.wasm,
    env.namespace,
    env.catalog,
    sandboxOf(face, env),
  )

function sandboxOf(face: ToolFace, env: ToolEnvironment): Sandbox {
  if (env.sandbox === undefined)
    throw new PrepareError(`tool ${face.name} needs the Wasm sandbox, which this runtime lacks`)
  return env.sandbox
}

/** The kinds every runtime has; an assembly adds its own (MCP) to a copy. */
export const TOOL_KINDS: ToolKinds = { builtin, agent, http, wasm }

/** A built-in tool under the name (and description) the agent gives it. */
export function fromBuiltin(name: string, b: BuiltinTool, description?: string): PreparedTool {
  const n = modelName(name)
  return {
    name: n,
    definition: definition(n, description ?? b.description, b.inputSchema),
    validator: compileJsonSchema(b.inputSchema),
    execute: (args, context) => b.execute(args, context),
  }
}

export function definition(name: string, description: string, parameters: JsonSchema): ToolDefinition {
  return { type: 'function', function: { name, description, parameters } }
}

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/

/** OpenAI accepts `[a-zA-Z0-9_-]{1,64}`; Kubernetes names may also hold dots. */
export function modelName(name: string): string {
  return TOOL_NAME.test(name) ? name : name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64)
}
