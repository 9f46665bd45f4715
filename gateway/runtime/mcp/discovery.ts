/**
 * The data plane's side of MCP discovery (controller/reconcile/mcp-discovery.ts): a hold on an MCPServer's (or
 * an agent's mcpServers entry's) shared connection, read as the view status shows. The controller holds it
 * between reconciles, so the connection it keeps open is the same one the agents using the server call
 * through.
 */
import type { InlineMcpServer, ResourceOf } from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { McpClients, McpEndpoint, McpState } from './client.ts'
import { inlineServerEndpoint, mcpServerEndpoint, prefixedTools } from './tools.ts'

export interface McpServerView {
  readonly verdict: { readonly status: 'True' | 'False'; readonly reason: string; readonly message: string }
  readonly address?: string
  readonly tools?: readonly string[]
}

export interface McpServerObservation {
  /** What the connection knows now; undefined while it is connecting. */
  now(): McpServerView | undefined
  release(): void
}

/** What the discovery controller observes servers through (its McpDiscovery), on these connections. */
export function mcpDiscovery(
  clients: McpClients,
  catalog: Catalog,
): {
  observe(server: ResourceOf<'MCPServer'>, onChange: () => void): McpServerObservation
  observeInline(
    agent: ResourceOf<'Agent'>,
    server: InlineMcpServer,
    onChange: () => void,
  ): McpServerObservation
} {
  return {
    observe: (server, onChange) => observeMcpServer(clients, server, catalog, onChange),
    observeInline: (agent, server, onChange) =>
      observeInlineMcpServer(clients, agent, server, catalog, onChange),
  }
}

export function observeMcpServer(
  clients: McpClients,
  server: ResourceOf<'MCPServer'>,
  catalog: Catalog,
  onChange: () => void,
): McpServerObservation {
  // An address kept in a Secret may carry its credential in the path (`/mcp/<key>/sse`): status, which more
  // people read than the Secret, shows its origin only.
  const secret = 'secretKeyRef' in server.spec.address
  return observe(clients, () => mcpServerEndpoint(server, catalog), onChange, { originOnly: secret })
}

/** One of an agent's `mcpServers`: the same connection the agent's tools use. */
export function observeInlineMcpServer(
  clients: McpClients,
  agent: ResourceOf<'Agent'>,
  server: InlineMcpServer,
  catalog: Catalog,
  onChange: () => void,
): McpServerObservation {
  return observe(clients, () => inlineServerEndpoint(agent.ref, server, catalog), onChange, {
    prefix: server.name,
  })
}

interface ObserveOptions {
  /** An inline server's name, under which its tools reach the model (collisions are reported). */
  readonly prefix?: string
  /** Show only the address's origin, in the address and in messages. */
  readonly originOnly?: boolean
}

function observe(
  clients: McpClients,
  endpointOf: () => McpEndpoint,
  onChange: () => void,
  options: ObserveOptions = {},
): McpServerObservation {
  let endpoint: McpEndpoint
  try {
    endpoint = endpointOf()
  } catch (err) {
    // An address or header whose value cannot be read: availability says which (its valueFailures).
    const view: McpServerView = {
      verdict: {
        status: 'False',
        reason: 'ConfigurationInvalid',
        message: err instanceof Error ? err.message : String(err),
      },
    }
    return { now: () => view, release: () => {} }
  }
  const handle = clients.acquire(endpoint)
  handle.onChange(onChange)
  const url = parsed(endpoint.url)
  const full = url === undefined ? undefined : `${url.protocol}//${url.host}${url.pathname}`
  const address = options.originOnly === true && url !== undefined ? url.origin : full
  // Messages quote the url as the client shows it (no credentials, no query): cut them to the origin too.
  const hidden = options.originOnly === true && url !== undefined && url.pathname.length > 1 ? url : undefined
  const shown = (text: string) =>
    hidden === undefined || full === undefined
      ? text
      : text.split(full).join(`${hidden.origin}/…`).split(hidden.pathname).join('/…')
  return {
    now: () => {
      const state = handle.state()
      if (state.status === 'connecting') return undefined
      const view = viewOf(state, address, options.prefix)
      return { ...view, verdict: { ...view.verdict, message: shown(view.verdict.message) } }
    },
    release: () => handle.release(),
  }
}

function viewOf(
  state: Exclude<McpState, { status: 'connecting' }>,
  address: string | undefined,
  prefix: string | undefined,
): McpServerView {
  const at = address === undefined ? {} : { address }
  switch (state.status) {
    case 'ready': {
      const warnings = [...state.warnings]
      const leftOut = prefix === undefined ? [] : prefixedTools(prefix, state.tools).leftOut
      if (leftOut.length > 0) {
        warnings.push(
          `left out, their names taken by another tool once made names models accept: ${leftOut.slice(0, 10).join(', ')}${leftOut.length > 10 ? ', ...' : ''}`,
        )
      }
      const warned = warnings.length === 0 ? '' : `; ${warnings.join('; ')}`
      return {
        ...at,
        tools: state.tools.map((t) => t.name),
        verdict: {
          status: 'True',
          reason: 'ToolsDiscovered',
          message: `${String(state.tools.length)} tool${state.tools.length === 1 ? '' : 's'} listed${warned}`,
        },
      }
    }
    case 'failed':
      return {
        ...at,
        verdict: {
          status: 'False',
          reason: 'ServerUnreachable',
          // Without the retry delay, which grows at each attempt: an unchanged failure writes no status.
          message: state.error,
        },
      }
  }
}

/** The url as status may show it: its credentials and query (either may carry a secret) are never read. */
function parsed(url: string): URL | undefined {
  try {
    return new URL(url)
  } catch {
    return undefined
  }
}
