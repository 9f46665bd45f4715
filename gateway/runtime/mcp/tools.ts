/**
 * MCP servers' tools as an agent's tools: ARK Tools of `type: mcp` (one tool of an MCPServer resource) and
 * ArkAgent `mcpServers` entries (every tool of the server, named `<server>__<tool>`). Both share the process's
 * connections (client.ts): an agent's preparation acquires a handle per server and its dispose() releases it.
 *
 * A server that cannot be reached does not stop an ArkAgent: it runs with the tools it has (seed 003), and it
 * is prepared again once the server is back, as it is when the server's tool list changes. A Tool of type mcp
 * names one tool the agent depends on, so there the server being down is the agent's failure to prepare.
 */
import type { InlineMcpServer, NamedValue, ObjectRef, ResourceOf } from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { Logger } from '../../log.ts'
import { compileJsonSchema } from '../schema.ts'
import type { JsonValidator } from '../schema.ts'
import type { ServerTools, ToolEnvironment, ToolFace, ToolKind } from '../tools/kinds.ts'
import { definition, modelName } from '../tools/kinds.ts'
import type { PreparedTool } from '../tools/tool.ts'
import { PrepareError } from '../tools/tool.ts'
import type { McpClients, McpEndpoint, McpServerHandle, McpState, McpTool } from './client.ts'

/** What joins a server's name and its tool's in the name the model calls (seed 003: `web-search__search`). */
export const MCP_TOOL_SEPARATOR = '__'

/**
 * How long an agent's preparation waits for an inline server to connect before it goes on without that
 * server's tools (it is prepared again when the server is ready).
 */
const INLINE_CONNECT_WAIT_MS = 10_000
/** Bound of one call of an inline server's tool, which has no field of its own for it. */
const INLINE_TOOL_CALL_TIMEOUT_MS = 60_000

export interface McpToolsOptions {
  readonly log: Logger
  /** How long an agent's preparation waits for an inline server (default 10 s); tests shorten it. */
  readonly connectWaitMs?: number
  /** Bound of one call of an inline server's tool (default 60 s); an MCPServer says its own. */
  readonly toolCallTimeoutMs?: number
}

/** The `mcp` Tool type: one named tool of an MCPServer resource. */
export function mcpToolKind(clients: McpClients, options: McpToolsOptions): ToolKind<'mcp'> {
  return async (impl, face, env) => {
    const { server: ref, toolName } = impl.mcp
    const server = env.catalog.get('MCPServer', ref)
    if (server === undefined)
      throw new PrepareError(`tool ${face.name}: MCPServer ${ref.namespace}/${ref.name} not found`)
    const handle = clients.acquire(mcpServerEndpoint(server, env.catalog))
    try {
      const state = await handle.settled(env.signal)
      if (state.status !== 'ready') {
        throw new PrepareError(
          `tool ${face.name}: MCPServer ${ref.namespace}/${ref.name} is not connected (${notReady(state)})`,
        )
      }
      const tool = state.tools.find((t) => t.name === toolName)
      if (tool === undefined) {
        throw new PrepareError(
          `tool ${face.name}: MCPServer ${ref.namespace}/${ref.name} has no tool "${toolName}" (it has ${listNames(state.tools)})`,
        )
      }
      const prepared = mcpTool(handle, tool, face, options.log)
      if (prepared === undefined)
        throw new PrepareError(`tool ${face.name}: the inputSchema of "${toolName}" does not compile`)
      const seen = signature([tool])
      watch(handle, env, (s) => signature(s.tools.filter((t) => t.name === toolName)) !== seen)
      return { ...prepared, dispose: () => handle.release() }
    } catch (err) {
      handle.release()
      throw err
    }
  }
}

/** ArkAgent `mcpServers`: every tool the server lists, prefixed; none while it cannot be reached. */
export function mcpServerTools(clients: McpClients, options: McpToolsOptions): ServerTools {
  return async (server, env) => {
    // Refused here too (McpClients would fail the connection), so that the agent is refused, not reduced.
    if (server.transport === 'stdio' && !clients.stdio) {
      throw new PrepareError(
        `mcpServers ${server.name} is a command (stdio), which only ark dev runs; serve it over HTTP for this runtime`,
      )
    }
    const waitMs = options.connectWaitMs ?? INLINE_CONNECT_WAIT_MS
    const endpoint = inlineServerEndpoint(
      env.agent,
      server,
      env.catalog,
      waitMs,
      options.toolCallTimeoutMs ?? INLINE_TOOL_CALL_TIMEOUT_MS,
    )
    const handle = clients.acquire(endpoint)
    const wait = AbortSignal.any([env.signal, AbortSignal.timeout(waitMs)])
    let state: McpState
    try {
      state = await handle.settled(wait)
    } catch (err) {
      handle.release()
      throw err
    }
    const offered = state.status === 'ready' ? state.tools : []
    if (state.status !== 'ready') {
      options.log.warn('agent runs without an MCP server’s tools', {
        agent: `${env.agent.namespace}/${env.agent.name}`,
        server: server.name,
        reason: notReady(state),
      })
    }
    const { kept, leftOut } = prefixedTools(server.name, offered)
    for (const name of leftOut) {
      options.log.warn('MCP tool left out: its name is taken once made a name models accept', {
        server: endpoint.name,
        tool: name,
      })
    }
    const tools: PreparedTool[] = []
    for (const { name, tool } of kept) {
      const prepared = mcpTool(
        handle,
        tool,
        { name, description: undefined, inputSchema: undefined },
        options.log,
      )
      if (prepared !== undefined) tools.push(prepared)
    }
    const seen = signature(offered)
    watch(handle, env, (s) => signature(s.tools) !== seen)
    // Held even with no tools, so that the agent hears when the server is ready.
    return { tools, dispose: () => handle.release() }
  }
}

/**
 * An inline server's tools under the names the model sees: `<server>__<tool>`, made what providers accept
 * (`[a-zA-Z0-9_-]`, 64 characters). Two tools whose names become the same keep the first; the others are
 * left out (their MCP names are returned, to be reported).
 */
export function prefixedTools(
  serverName: string,
  tools: readonly McpTool[],
): {
  readonly kept: readonly { readonly name: string; readonly tool: McpTool }[]
  readonly leftOut: readonly string[]
} {
  const kept: { name: string; tool: McpTool }[] = []
  const leftOut: string[] = []
  const names = new Set<string>()
  for (const tool of tools) {
    const name = modelName(`${serverName}${MCP_TOOL_SEPARATOR}${tool.name}`)
    if (names.has(name)) leftOut.push(tool.name)
    else {
      names.add(name)
      kept.push({ name, tool })
    }
  }
  return { kept, leftOut }
}

/** Where an MCPServer resource is, read from the catalog now (address and headers may be in Secrets). */
export function mcpServerEndpoint(server: ResourceOf<'MCPServer'>, catalog: Catalog): McpEndpoint {
  const ns = server.ref.namespace
  const address = catalog.resolveValue(ns, server.spec.address)
  if (!address.ok)
    throw new PrepareError(`MCPServer ${ns}/${server.ref.name} spec.address: ${address.message}`)
  const s = server.spec
  return {
    name: `${ns}/${server.ref.name}`,
    url: address.value ?? '',
    transport: s.transport,
    headers: resolveHeaders(s.headers, ns, catalog, `MCPServer ${ns}/${server.ref.name}`),
    timeoutMs: s.timeoutSeconds * 1000,
    ...(s.toolCallTimeoutSeconds === undefined ? {} : { toolCallTimeoutMs: s.toolCallTimeoutSeconds * 1000 }),
  }
}

/** Where one of an agent's `mcpServers` is (header values may be in Secrets of the agent's namespace). */
export function inlineServerEndpoint(
  agent: ObjectRef,
  server: InlineMcpServer,
  catalog: Catalog,
  timeoutMs = INLINE_CONNECT_WAIT_MS,
  toolCallTimeoutMs = INLINE_TOOL_CALL_TIMEOUT_MS,
): McpEndpoint {
  return {
    name: `${agent.namespace}/${agent.name}:${server.name}`,
    ...(server.transport === 'stdio'
      ? { url: '', transport: 'stdio', command: server.command }
      : { url: server.url, transport: server.transport }),
    headers: resolveHeaders(server.headers, agent.namespace, catalog, `mcpServers ${server.name}`),
    timeoutMs,
    toolCallTimeoutMs,
  }
}

function resolveHeaders(
  headers: readonly NamedValue[],
  namespace: string,
  catalog: Catalog,
  what: string,
): Record<string, string> {
  const out: Record<string, string> = {}
  for (const h of headers) {
    const v = catalog.resolveValue(namespace, h.source)
    // The message names the header and where its value lives, never the value.
    if (!v.ok) throw new PrepareError(`${what} header ${h.name}: ${v.message}`)
    if (v.value !== undefined) out[h.name] = v.value
  }
  return out
}

/**
 * One MCP tool as the agent shows it; undefined (with a warning) when its inputSchema does not compile, since
 * arguments are checked against it before the call.
 */
function mcpTool(
  handle: McpServerHandle,
  tool: McpTool,
  face: ToolFace,
  log: Logger,
): PreparedTool | undefined {
  const schema = face.inputSchema ?? tool.inputSchema
  let validator: JsonValidator
  try {
    validator = compileJsonSchema(schema)
  } catch (err) {
    log.warn('MCP tool left out: its inputSchema does not compile', {
      server: handle.endpoint.name,
      tool: tool.name,
      error: err instanceof Error ? err.message : String(err),
    })
    return undefined
  }
  const description =
    face.description ?? (tool.description === '' ? `The MCP tool ${tool.name}.` : tool.description)
  return {
    name: face.name,
    definition: definition(face.name, description, schema),
    validator,
    execute: (args, context) => handle.callTool(tool.name, args, context.signal),
  }
}

/** Tells the runtime to prepare the agent again when the server's tools differ from what it was made from. */
function watch(
  handle: McpServerHandle,
  env: ToolEnvironment,
  changed: (s: Extract<McpState, { status: 'ready' }>) => boolean,
): void {
  handle.onChange((state) => {
    // A server that fails keeps its tools in the agent (their calls say it is not connected) rather than
    // changing the agent's tool list under a conversation; a server that is back with other tools changes it.
    if (state.status === 'ready' && changed(state)) env.stale()
  })
}

function signature(tools: readonly McpTool[]): string {
  return JSON.stringify(tools)
}

function notReady(state: McpState): string {
  if (state.status === 'failed') return `${state.error}; ark retries in ${String(state.retryInMs)} ms`
  return 'still connecting'
}

function listNames(tools: readonly McpTool[]): string {
  if (tools.length === 0) return 'none'
  const names = tools.slice(0, 20).map((t) => t.name)
  return `${names.join(', ')}${tools.length > 20 ? `, and ${String(tools.length - 20)} more` : ''}`
}
