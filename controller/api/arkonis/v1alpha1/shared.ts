/** Shapes that ArkAgent and ArkTeam's inline roles share, and their conversion. */
import type { AdaptContext } from '../../define.ts'
import { detectProvider, localRef } from '../../adapt.ts'
import type { AgentSpec, AgentTool, JsonSchema, PromptSource } from '../../resources.ts'
import { Enum, Int, KeySelector, List, Name, Obj, Opt, Str, Type } from '../../schema.ts'
import type { Static } from '../../schema.ts'
import { DEFAULT_LIMITS } from '../group.ts'

export const SystemPromptRef = Obj({ configMapKeyRef: Opt(KeySelector), secretKeyRef: Opt(KeySelector) })

export const McpServerEntry = Obj({
  name: Name('Prefix of the server’s tools: `<name>__<tool>`.'),
  url: Opt(
    Str({
      minLength: 1,
      pattern: '^https?://',
      description:
        'URL of the MCP server: one whose path ends in /sse speaks the SSE transport (seed 003), any other streamable HTTP. Set url or command.',
    }),
  ),
  command: Opt(
    List(Str({ minLength: 1 }), {
      minItems: 1,
      maxItems: 64,
      description:
        'An ark extension: a local MCP server over stdio, the program and its arguments (e.g. [npx, -y, some-mcp-server]). Only `ark dev` runs it, with no environment but PATH, HOME and the like; elsewhere the agent is not Available. Set url or command.',
    }),
  ),
})

export const WebhookTool = Obj(
  {
    name: Str({ minLength: 1, pattern: '^[a-zA-Z0-9_-]{1,64}$' }),
    description: Opt(Str()),
    url: Str({ minLength: 1, pattern: '^https?://' }),
    method: Opt(Enum(['GET', 'POST', 'PUT', 'PATCH'], { default: 'POST' })),
    inputSchema: Opt(Str({ description: 'JSON Schema of the arguments, as a JSON string.' })),
  },
  { required: ['name', 'url'] },
)

export const Limits = Obj(
  {
    maxTokensPerCall: Opt(Int({ minimum: 1, default: DEFAULT_LIMITS.maxTokensPerCall })),
    maxConcurrentTasks: Opt(Int({ minimum: 1, default: DEFAULT_LIMITS.maxConcurrentTasks })),
    timeoutSeconds: Opt(Int({ minimum: 1, default: DEFAULT_LIMITS.timeoutSeconds })),
    maxDailyTokens: Opt(
      Int({
        minimum: 1,
        description:
          'Tokens (input + output) the agent may use per UTC day, across all its workers; a run is refused once the day’s usage reached it, and a run that crosses it stops before its next model call. Unset means no limit.',
      }),
    ),
  },
  { default: {} },
)

export const LivenessProbe = Obj(
  {
    type: Enum(['ping', 'semantic'], { default: 'ping' }),
    intervalSeconds: Opt(Int({ minimum: 1, default: 60 })),
    validatorPrompt: Opt(Str()),
  },
  { required: ['type'] },
)

/** The agent-shaped part of ArkAgent (also an ArkTeam inline role). */
export const AgentFields = {
  model: Str({
    minLength: 1,
    description: 'Model id; the provider is detected from it (gpt-*, o1-*, claude-*, ...).',
  }),
  systemPrompt: Opt(Str()),
  systemPromptRef: Opt(SystemPromptRef),
  mcpServers: Opt(List(McpServerEntry)),
  tools: Opt(List(WebhookTool)),
  limits: Opt(Limits),
}

type AgentDoc = {
  model: string
  systemPrompt?: string | undefined
  systemPromptRef?: Static<typeof SystemPromptRef> | undefined
  mcpServers?: Static<typeof McpServerEntry>[] | undefined
  tools?: Static<typeof WebhookTool>[] | undefined
  limits?: Static<typeof Limits> | undefined
}

/** The built-in tools ark-operator gives every agent pod. */
const POD_BUILTINS = ['submit_subtask', 'get_subtask_result'] as const

/** ArkAgent-shaped fields to the internal agent; `path` is where they sit in the document. */
export function adaptAgentFields(doc: AgentDoc, path: string, ctx: AdaptContext): AgentSpec {
  let prompt: PromptSource | undefined
  const r = doc.systemPromptRef
  if (r !== undefined) {
    if (r.configMapKeyRef !== undefined && r.secretKeyRef === undefined)
      prompt = { configMapKeyRef: { ...r.configMapKeyRef } }
    else if (r.secretKeyRef !== undefined && r.configMapKeyRef === undefined)
      prompt = { secretKeyRef: { ...r.secretKeyRef } }
    else ctx.error(`${path}.systemPromptRef`, 'must set exactly one of configMapKeyRef, secretKeyRef')
  } else if (doc.systemPrompt !== undefined) {
    prompt = { inline: doc.systemPrompt }
  } else {
    ctx.error(`${path}.systemPrompt`, 'is required: set systemPrompt or systemPromptRef')
  }

  const tools: AgentTool[] = []
  const toolNames = new Set<string>()
  ;(doc.mcpServers ?? []).forEach((s, i) => {
    if (toolNames.has(s.name)) ctx.error(`${path}.mcpServers[${i}].name`, `"${s.name}" is used twice`)
    toolNames.add(s.name)
    if ((s.url === undefined) === (s.command === undefined)) {
      ctx.error(`${path}.mcpServers[${i}]`, 'must set exactly one of url, command')
      return
    }
    tools.push({
      kind: 'mcpServer',
      server:
        s.command !== undefined
          ? { name: s.name, transport: 'stdio', command: [...s.command], headers: [] }
          : { name: s.name, url: s.url ?? '', transport: mcpTransportOf(s.url ?? ''), headers: [] },
    })
  })
  ;(doc.tools ?? []).forEach((t, i) => {
    const at = `${path}.tools[${i}]`
    if (toolNames.has(t.name)) ctx.error(`${at}.name`, `"${t.name}" is used twice`)
    toolNames.add(t.name)
    let inputSchema: JsonSchema | undefined
    if (t.inputSchema !== undefined) {
      try {
        const parsed: unknown = JSON.parse(t.inputSchema)
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          ctx.error(`${at}.inputSchema`, 'must be a JSON object (a JSON Schema)')
        } else inputSchema = parsed as JsonSchema
      } catch (err) {
        ctx.error(`${at}.inputSchema`, `is not valid JSON: ${(err as Error).message}`)
      }
    }
    tools.push({
      kind: 'inline',
      name: t.name,
      tool: {
        type: 'http',
        http: { url: t.url, method: t.method ?? 'POST', headers: [], bodyParameters: [] },
        ...(t.description === undefined ? {} : { description: t.description }),
        ...(inputSchema === undefined ? {} : { inputSchema }),
      },
    })
  })

  // Seed 003: every agent pod has submit_subtask whatever tools it lists, and get_subtask_result to collect
  // what it submitted. `delegate` comes with team membership, which only the runtime sees. A tool of the
  // agent's own by the same name wins.
  for (const name of POD_BUILTINS) if (!toolNames.has(name)) tools.push({ kind: 'builtin', name })

  const l = doc.limits ?? {}
  return {
    ...(prompt === undefined ? {} : { prompt }),
    model: { id: doc.model, provider: detectProvider(doc.model) },
    tools,
    parameters: [],
    limits: {
      maxTokensPerCall: l.maxTokensPerCall ?? DEFAULT_LIMITS.maxTokensPerCall,
      maxConcurrentTasks: l.maxConcurrentTasks ?? DEFAULT_LIMITS.maxConcurrentTasks,
      timeoutSeconds: l.timeoutSeconds ?? DEFAULT_LIMITS.timeoutSeconds,
      ...(l.maxDailyTokens === undefined ? {} : { maxDailyTokens: l.maxDailyTokens }),
    },
  }
}

/** ark-operator's docs show `configRef: name` and its API `configRef: {name}`; both are accepted. */
export const NameOrRef = Type.Unsafe<string | { name: string }>({
  'x-kubernetes-preserve-unknown-fields': true,
  description: 'A name, or {name}.',
})

export function nameOrRef(v: unknown, path: string, ctx: AdaptContext) {
  if (typeof v === 'string' && v !== '') return localRef(v, ctx)
  if (typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string') {
    const name = (v as { name: string }).name
    if (name !== '') return localRef(name, ctx)
  }
  ctx.error(path, 'must be a name or {name: <name>}')
  return undefined
}

/**
 * ark-operator's runtime speaks SSE to every server (seed 003: `https://search.mcp.internal/sse`); servers
 * since have moved to streamable HTTP, usually at `/mcp`. The path says which one a server serves.
 */
export function mcpTransportOf(url: string): 'sse' | 'http' {
  let path: string
  try {
    path = new URL(url).pathname
  } catch {
    return 'http'
  }
  return /\/sse\/?$/.test(path) ? 'sse' : 'http'
}
