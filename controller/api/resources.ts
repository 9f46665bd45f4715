/**
 * The one internal resource model.
 *
 * Every manifest, whichever dialect it was written in (`ark.mckinsey.com` or `arkonis.dev`), is turned by a
 * pure adapter into one of these plain objects. Nothing past the adapters branches on the dialect: the
 * `origin` field exists only so that status can be written back in the resource's own dialect and so that
 * messages can name the document a user wrote.
 */

/** Internal kinds. ArkAgent becomes Agent, ArkTeam becomes Team, ArkMemory becomes Memory, and so on. */
export const KINDS = [
  'Agent',
  'Model',
  'Tool',
  'Team',
  'Memory',
  'Query',
  'MCPServer',
  'A2AServer',
  'ExecutionEngine',
  'Evaluation',
  'AgentService',
  'Settings',
  'ConfigMap',
  'Secret',
] as const
export type Kind = (typeof KINDS)[number]

export interface ObjectRef {
  readonly namespace: string
  readonly name: string
}

/** Where a resource came from: the document the user wrote. */
export interface Origin {
  /** apiVersion and kind exactly as written, e.g. `arkonis.dev/v1alpha1` / `ArkAgent`. */
  readonly apiVersion: string
  readonly kind: string
  /** File and 0-based document index for a manifests folder; absent for resources read from a cluster. */
  readonly file?: string
  readonly index?: number
  /** Set when the resource was generated from another one (an ArkTeam's inline role becomes an Agent). */
  readonly ownerKey?: string
}

export interface Meta {
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly uid?: string
  readonly generation?: number
  readonly resourceVersion?: string
  readonly creationTimestamp?: string
}

export interface Resource<K extends Kind = Kind, S = unknown> {
  readonly kind: K
  /** `Kind/namespace/name`: unique across the whole store, whatever the dialect. */
  readonly key: string
  readonly ref: ObjectRef
  readonly meta: Meta
  readonly origin: Origin
  readonly spec: S
}

export function resourceKey(kind: Kind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`
}

// ---------------------------------------------------------------------------------------------------------
// Values that may come from elsewhere

export interface KeyRef {
  readonly name: string
  readonly key: string
  /** Kubernetes' `optional`: a missing ConfigMap/Secret/key resolves to no value instead of an error. */
  readonly optional?: boolean
}

/** A string that is written inline or read from a ConfigMap, a Secret, a Service or a Query parameter. */
export type ValueSource =
  | { readonly value: string }
  | { readonly configMapKeyRef: KeyRef }
  | { readonly secretKeyRef: KeyRef }
  | { readonly queryParameterRef: { readonly name: string } }
  | {
      readonly serviceRef: {
        readonly name: string
        readonly namespace?: string
        readonly port?: string
        readonly path?: string
      }
    }

export interface NamedValue {
  readonly name: string
  readonly source: ValueSource
}

export type JsonSchema = Readonly<Record<string, unknown>>

// ---------------------------------------------------------------------------------------------------------
// Agent

export type ProviderType = 'openai' | 'azure' | 'anthropic' | 'bedrock' | 'mock'

export type ModelBinding =
  /** A Model resource. */
  | { readonly ref: ObjectRef }
  /** A model id with its provider detected from the id (ArkAgent's `model: llama3.2`). */
  | { readonly id: string; readonly provider: ProviderType }

export type PromptSource =
  { readonly inline: string } | { readonly configMapKeyRef: KeyRef } | { readonly secretKeyRef: KeyRef }

/**
 * An MCP server an agent names itself (ArkAgent `mcpServers`): at a url (streamable HTTP, or SSE for a path
 * ending in /sse), or a local command speaking stdio, which only `ark dev` runs.
 */
export type InlineMcpServer = {
  readonly name: string
  readonly headers: readonly NamedValue[]
} & (
  | { readonly transport: 'sse' | 'http'; readonly url: string }
  | { readonly transport: 'stdio'; readonly command: readonly string[] }
)

/** One entry of an agent's tool list. */
export type AgentTool =
  /** A tool the runtime provides itself (calculator, terminate, ...). */
  | { readonly kind: 'builtin'; readonly name: string; readonly description?: string }
  /** A Tool resource; `expectType` is set when the manifest said which type the Tool must be. */
  | {
      readonly kind: 'ref'
      readonly ref: ObjectRef
      /** Name the model sees, when it differs from the Tool's (ARK `partial`). */
      readonly as?: string
      readonly expectType?: ToolType
      readonly description?: string
      /** Arguments fixed by the agent and hidden from the model (ARK `partial`, `functions`). */
      readonly fixed: readonly NamedValue[]
    }
  /** A tool defined inside the agent itself (ArkAgent webhook tools). */
  | { readonly kind: 'inline'; readonly name: string; readonly tool: ToolSpec }
  /** Every tool of an MCP server declared inside the agent (ArkAgent `mcpServers`), prefixed `<server>__`. */
  | { readonly kind: 'mcpServer'; readonly server: InlineMcpServer }

export interface AgentLimits {
  /** Input + output token budget per LLM call. */
  readonly maxTokensPerCall?: number
  /** Tasks one worker runs at the same time. */
  readonly maxConcurrentTasks?: number
  /** Per-task timeout. */
  readonly timeoutSeconds?: number
  /**
   * Tokens (input + output, as providers report them) the agent may use per UTC day, counted across every
   * runtime that runs it; absent means no limit.
   */
  readonly maxDailyTokens?: number
}

export interface HealthProbe {
  readonly type: 'ping' | 'semantic'
  readonly intervalSeconds: number
  readonly validatorPrompt?: string
}

export interface AgentSpec {
  readonly description?: string
  readonly prompt?: PromptSource
  /** Absent: the namespace's `default` Model (as ARK does), unless the agent runs on a remote engine. */
  readonly model?: ModelBinding
  /** Absent: the built-in engine. `a2a` means the agent is a remote A2A agent. */
  readonly executionEngine?: ObjectRef
  readonly tools: readonly AgentTool[]
  readonly parameters: readonly NamedValue[]
  readonly outputSchema?: JsonSchema
  readonly limits: AgentLimits
  /** Pool size; absent means the runtime's default. */
  readonly replicas?: number
  readonly memory?: ObjectRef
  readonly settings?: ObjectRef
  readonly probe?: HealthProbe
  /** Set for agents that front a remote A2A server. */
  readonly a2a?: { readonly serverName?: string; readonly address?: string; readonly skills?: string }
}

// ---------------------------------------------------------------------------------------------------------
// Model

export interface ModelSpec {
  readonly provider: ProviderType
  /** The provider's model id (`gpt-4o`, `claude-sonnet-4-5`, ...). */
  readonly model: ValueSource
  readonly baseUrl?: ValueSource
  readonly apiKey?: ValueSource
  /** Azure `apiVersion`, Anthropic `version`. */
  readonly apiVersion?: ValueSource
  readonly headers: readonly NamedValue[]
  /** Request properties passed to the provider (temperature, max_tokens, ...). */
  readonly properties: readonly NamedValue[]
  /** Bedrock only. */
  readonly bedrock?: {
    readonly region?: ValueSource
    readonly accessKeyId?: ValueSource
    readonly secretAccessKey?: ValueSource
    readonly sessionToken?: ValueSource
    readonly modelArn?: ValueSource
    readonly maxTokens?: number
    readonly temperature?: string
  }
  readonly pollIntervalSeconds: number
}

// ---------------------------------------------------------------------------------------------------------
// Tool

export const TOOL_TYPES = ['http', 'mcp', 'agent', 'team', 'builtin', 'wasm'] as const
export type ToolType = (typeof TOOL_TYPES)[number]

export interface HttpToolSpec {
  /** URL template; `{{param}}` placeholders are filled from the call's arguments. */
  readonly url: string
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  readonly headers: readonly NamedValue[]
  readonly body?: string
  readonly bodyParameters: readonly NamedValue[]
  readonly timeoutSeconds?: number
}

export type WasmModuleSource =
  | { readonly builtin: string }
  | { readonly path: string }
  | { readonly configMapKeyRef: KeyRef }
  | { readonly url: string; readonly sha256: string }

export interface WasmToolSpec {
  readonly module: WasmModuleSource
  /** The exported function to call. */
  readonly function: string
  readonly allowedHosts: readonly string[]
  readonly config: readonly NamedValue[]
  readonly limits: {
    readonly timeoutMs?: number
    readonly memoryMiB?: number
    readonly maxInputBytes?: number
    readonly maxOutputBytes?: number
  }
}

export type ToolImpl =
  | { readonly type: 'http'; readonly http: HttpToolSpec }
  | { readonly type: 'mcp'; readonly mcp: { readonly server: ObjectRef; readonly toolName: string } }
  | { readonly type: 'agent'; readonly agent: ObjectRef }
  | { readonly type: 'team'; readonly team: ObjectRef }
  | { readonly type: 'builtin'; readonly builtin: { readonly name: string } }
  | { readonly type: 'wasm'; readonly wasm: WasmToolSpec }

export type ToolSpec = ToolImpl & {
  readonly description?: string
  readonly inputSchema?: JsonSchema
  readonly annotations?: Readonly<Record<string, unknown>>
}

// ---------------------------------------------------------------------------------------------------------
// Team

export type TeamStrategy = 'sequential' | 'round-robin' | 'selector' | 'graph' | 'pipeline' | 'dynamic'

export interface TeamMember {
  /** The member's name inside the team (ArkTeam role name; ARK member name). */
  readonly name: string
  readonly type: 'agent' | 'team'
  readonly ref: ObjectRef
  /** Roles this member may hand work to (`delegate` tool); empty means none. */
  readonly canDelegate: readonly string[]
  /**
   * The role's own bounds on each of its turns (ArkTeam `limits` on a role that names an existing agent):
   * the tighter of these and the agent's apply.
   */
  readonly limits?: TurnLimits
}

/** Bounds a team puts on one member turn. */
export interface TurnLimits {
  readonly timeoutSeconds?: number
  readonly maxTokensPerCall?: number
}

export interface PipelineStep {
  readonly member: string
  readonly dependsOn: readonly string[]
  readonly inputs: Readonly<Record<string, string>>
  readonly outputSchema?: JsonSchema
}

export interface TeamSpec {
  readonly description?: string
  readonly members: readonly TeamMember[]
  readonly strategy: TeamStrategy
  readonly maxTurns?: number
  readonly loops: boolean
  readonly selector?: {
    readonly agent?: string
    readonly selectorPrompt?: string
    readonly enableTerminateTool: boolean
    readonly terminatePrompt?: string
  }
  readonly graph?: { readonly edges: readonly { readonly from: string; readonly to: string }[] }
  /** Member that receives inbound tasks (dynamic mode). */
  readonly entry?: string
  readonly pipeline: readonly PipelineStep[]
  /** Template of the team's final output. */
  readonly output?: string
  readonly timeoutSeconds?: number
  readonly maxTokens?: number
}

// ---------------------------------------------------------------------------------------------------------
// Memory, Settings, AgentService

export interface MemorySpec {
  readonly backend: 'http' | 'in-context' | 'redis' | 'vector-store'
  /** `http`: address of a memory service (ARK Memory). */
  readonly address?: ValueSource
  readonly headers: readonly NamedValue[]
  readonly redis?: { readonly secretName: string; readonly ttlSeconds: number; readonly maxEntries?: number }
  readonly vectorStore?: {
    readonly provider: 'qdrant' | 'pinecone' | 'weaviate'
    readonly endpoint: string
    readonly collection: string
    readonly secretName?: string
    readonly ttlSeconds?: number
  }
}

export interface SettingsSpec {
  /** Sampling temperature, as written (`"0.3"`): sent as a number on every model call of the agent. */
  readonly temperature?: string
  /** `structured-json` (or `json`), `markdown`, `plain`; other values are kept but change nothing. */
  readonly outputFormat?: string
  readonly memoryBackend?: 'in-context' | 'vector-store' | 'redis'
  /** Prepended to an agent's prompt. */
  readonly persona?: string
  /** Appended to an agent's prompt, last of all. */
  readonly outputRules?: string
  /** Other named prompt fragments, in alphabetical order of name: appended after the prompt, before outputRules. */
  readonly fragments?: readonly { readonly name: string; readonly text: string }[]
}

export interface AgentServiceSpec {
  readonly agent: ObjectRef
  readonly strategy: 'round-robin' | 'least-busy' | 'random'
  readonly ports: readonly { readonly protocol: 'A2A' | 'HTTP'; readonly port: number }[]
}

// ---------------------------------------------------------------------------------------------------------
// Query

export type TargetType = 'agent' | 'team' | 'model' | 'tool'

export interface QueryTarget {
  readonly type: TargetType
  readonly name: string
}

export interface QuerySpec {
  readonly type: 'user' | 'messages'
  /** A string for `user`, an array of OpenAI chat messages for `messages`. */
  readonly input: unknown
  readonly targets: readonly QueryTarget[]
  readonly selector?: Readonly<Record<string, unknown>>
  readonly parameters: readonly NamedValue[]
  readonly memory?: ObjectRef
  readonly sessionId?: string
  readonly conversationId?: string
  readonly serviceAccount?: string
  readonly timeoutSeconds: number
  readonly ttlSeconds: number
  readonly cancel: boolean
}

// ---------------------------------------------------------------------------------------------------------
// Remote servers, engines and evaluations

export interface McpServerSpec {
  readonly address: ValueSource
  readonly transport: 'http' | 'sse'
  readonly headers: readonly NamedValue[]
  readonly description?: string
  readonly timeoutSeconds: number
  readonly toolCallTimeoutSeconds?: number
  readonly pollIntervalSeconds: number
}

export interface A2AServerSpec {
  readonly address: ValueSource
  readonly headers: readonly NamedValue[]
  readonly description?: string
  readonly pollIntervalSeconds: number
  readonly timeoutSeconds: number
}

export interface ExecutionEngineSpec {
  readonly type: string
  readonly address?: ValueSource
  readonly description?: string
}

export interface EvaluationSpec {
  readonly type: 'direct' | 'baseline' | 'query' | 'batch' | 'event'
  readonly config: Readonly<Record<string, unknown>>
  readonly evaluator?: { readonly ref: ObjectRef; readonly parameters: readonly NamedValue[] }
  readonly timeoutSeconds: number
  readonly ttlSeconds: number
}

// ---------------------------------------------------------------------------------------------------------
// Core inputs

export interface ConfigMapSpec {
  readonly data: Readonly<Record<string, string>>
  /** Base64 kept as written: binaries are decoded only by whoever needs bytes (Wasm modules). */
  readonly binaryData: Readonly<Record<string, string>>
}

/** Secret values, decoded. They live only in memory: never logged, never in status or errors. */
export interface SecretSpec {
  readonly type: string
  readonly data: Readonly<Record<string, string>>
}

export interface SpecOf {
  Agent: AgentSpec
  Model: ModelSpec
  Tool: ToolSpec
  Team: TeamSpec
  Memory: MemorySpec
  Query: QuerySpec
  MCPServer: McpServerSpec
  A2AServer: A2AServerSpec
  ExecutionEngine: ExecutionEngineSpec
  Evaluation: EvaluationSpec
  AgentService: AgentServiceSpec
  Settings: SettingsSpec
  ConfigMap: ConfigMapSpec
  Secret: SecretSpec
}

export type ResourceOf<K extends Kind> = Resource<K, SpecOf[K]>
export type AnyResource = { [K in Kind]: ResourceOf<K> }[Kind]

// ---------------------------------------------------------------------------------------------------------
// Status, dialect-neutral

export type ConditionStatus = 'True' | 'False' | 'Unknown'

export interface Condition {
  /** Internal condition type; each dialect maps it to its own name (Available, ModelAvailable, Ready, ...). */
  readonly type: string
  readonly status: ConditionStatus
  readonly reason: string
  readonly message: string
  readonly lastTransitionTime: string
  readonly observedGeneration?: number
}

export interface QueryResponse {
  readonly target: QueryTarget
  readonly content: string
  readonly raw?: string
  readonly phase: 'done' | 'error'
}

export interface TokenUsage {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
}

/** What an agent with limits.maxDailyTokens used of its budget on one UTC day. */
export interface DailyTokenUsage {
  /** The UTC day, `YYYY-MM-DD`. */
  readonly date: string
  readonly totalTokens: number
  /** limits.maxDailyTokens when it was read. */
  readonly limit: number
}

/** Everything any reconciler may report about a resource; each dialect writes the parts it has. */
export interface Status {
  readonly conditions: readonly Condition[]
  /** Pools (ArkAgent): replicas managed and ready. */
  readonly replicas?: number
  readonly readyReplicas?: number
  /** Queries. */
  readonly phase?: string
  readonly responses?: readonly QueryResponse[]
  readonly tokenUsage?: TokenUsage
  readonly duration?: string
  /** Agents with limits.maxDailyTokens: the day's usage (ArkAgent `dailyTokenUsage`). */
  readonly dailyTokenUsage?: DailyTokenUsage
  /** Remote servers: the address last resolved, and the tools discovered there (MCPServer). */
  readonly resolvedAddress?: string
  readonly toolCount?: number
  readonly tools?: readonly string[]
  readonly message?: string
}
