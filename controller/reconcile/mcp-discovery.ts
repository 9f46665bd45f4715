/**
 * MCP tool discovery: every MCP server a manifest names is connected to, and what the connection knows is
 * kept in status.
 * - An ARK MCPServer gets the address, the tool count and names, and a ToolsDiscovered condition with the
 *   reason when it cannot be reached. Availability folds that condition in, so the MCPServer, the Tools of
 *   `type: mcp` on it and the agents that use them become Available or not as the server comes and goes
 *   (seed 002's dependency rules).
 * - An agent with `mcpServers` (an ArkAgent) gets an McpServersConnected condition: a server it cannot reach
 *   leaves it running with the tools it has (seed 003), so this condition says what it lacks and why, and
 *   does not touch its availability.
 *
 * The connection belongs to whoever holds the MCP client (the runtime), and it outlives one reconcile: it
 * reconnects with backoff and follows tools/list_changed, and every change it reports queues the resource
 * again. This controller only holds it and records, so it never imports the data plane. On a cluster the
 * view is the controller's: a server the controller reaches and a worker does not reads as connected.
 */
import type { AnyResource, InlineMcpServer, ResourceOf, Status } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { setCondition, withCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export const TOOLS_DISCOVERED = 'ToolsDiscovered'
export const MCP_SERVERS_CONNECTED = 'McpServersConnected'

/** What a connection to an MCP server knows now. */
export interface McpServerView {
  /** ToolsDiscovered: True once the tools are listed; False with the reason while the server cannot be. */
  readonly verdict: Verdict
  /** The address connected to, without its query (which may carry credentials). */
  readonly address?: string
  /** Tool names, when listed. */
  readonly tools?: readonly string[]
}

/** One hold on a server's connection: it stays open (and reconnects) until released. */
export interface McpObservation {
  /**
   * What the connection knows now; undefined while an attempt to connect is under way (its end is a change,
   * which queues the resource again).
   */
  now(): McpServerView | undefined
  release(): void
}

export interface McpDiscovery {
  /** Holds the server's connection; `onChange` is called whenever its state or tool list changes. */
  observe(server: ResourceOf<'MCPServer'>, onChange: () => void): McpObservation
  /** The same for one of an agent's `mcpServers`: the connection its tools use. */
  observeInline(agent: ResourceOf<'Agent'>, server: InlineMcpServer, onChange: () => void): McpObservation
}

export interface McpDiscoveryOptions {
  readonly discovery: McpDiscovery
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

export class McpDiscoveryController {
  readonly #controller: Controller
  /** The connections held for each MCPServer (one) and agent (one per mcpServers entry), by key. */
  readonly #held = new Map<string, readonly McpObservation[]>()

  constructor(catalog: Catalog, writer: StatusWriter, options: McpDiscoveryOptions) {
    const now = options.now ?? (() => new Date())
    const { discovery } = options
    this.#controller = new Controller(
      'mcp-discovery',
      catalog,
      async (key) => {
        const resource = catalog.store.get(key)
        const servers =
          resource?.kind === 'Agent'
            ? resource.spec.tools.flatMap((t) => (t.kind === 'mcpServer' ? [t.server] : []))
            : []
        const onChange = () => this.#controller.enqueue(key)
        // New holds before the old ones are let go: a shared connection stays open when nothing that
        // decides it (address, transport, headers) changed, and a new one opens when something did.
        const observations =
          resource?.kind === 'MCPServer'
            ? [discovery.observe(resource, onChange)]
            : resource?.kind === 'Agent'
              ? servers.map((server) => discovery.observeInline(resource, server, onChange))
              : []
        for (const before of this.#held.get(key) ?? []) before.release()
        if (observations.length === 0) this.#held.delete(key)
        else this.#held.set(key, observations)
        if (resource === undefined) return undefined
        if (resource.kind === 'Agent' && observations.length === 0) {
          // mcpServers taken out of the agent: its condition goes with them.
          if (catalog.status(key)?.conditions.some((c) => c.type === MCP_SERVERS_CONNECTED) === true)
            await setCondition(writer, resource, MCP_SERVERS_CONNECTED, undefined, now)
          return undefined
        }
        // Level-based: what the connections know now. One still connecting writes nothing yet; the end of its
        // attempt queues this again. (Waiting for it here would hold a worker for a whole connect timeout.)
        const views = observations.map((o) => o.now())
        if (!views.every((v) => v !== undefined)) return undefined
        if (resource.kind === 'MCPServer') {
          const view = views[0]
          if (view !== undefined) {
            await writer.updateStatus(key, (current, latest) => discovered(current, latest, view, now))
          }
          return undefined
        }
        await setCondition(writer, resource, MCP_SERVERS_CONNECTED, connected(servers, views), now)
        return undefined
      },
      // MCPServers and agents (those with mcpServers); a Secret with a header value queues its dependents.
      { kinds: new Set(['MCPServer', 'Agent']) },
      {
        concurrency: 4,
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  start(): void {
    void this.#controller.start()
  }

  /** Resolves when no discovery is queued or running. */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
    for (const observations of this.#held.values()) for (const o of observations) o.release()
    this.#held.clear()
  }
}

/** The status with the view's address, tools and condition; undefined when that changes nothing. */
function discovered(
  current: Status | undefined,
  resource: AnyResource,
  view: McpServerView,
  now: () => Date,
): Status | undefined {
  const base = current ?? { conditions: [] }
  const sameTools =
    view.tools === undefined
      ? base.tools === undefined
      : base.tools !== undefined &&
        base.tools.length === view.tools.length &&
        base.tools.every((t, i) => t === view.tools?.[i])
  const fieldsChanged = base.resolvedAddress !== view.address || !sameTools
  let withFields = base
  if (fieldsChanged) {
    // What discovery owns is replaced by what the view knows, or dropped when it knows nothing.
    const rest: { -readonly [K in keyof Status]: Status[K] } = { ...base }
    delete rest.resolvedAddress
    delete rest.tools
    delete rest.toolCount
    withFields = {
      ...rest,
      ...(view.address === undefined ? {} : { resolvedAddress: view.address }),
      ...(view.tools === undefined ? {} : { tools: view.tools, toolCount: view.tools.length }),
    }
  }
  return (
    withCondition(withFields, resource, TOOLS_DISCOVERED, view.verdict, now) ??
    (fieldsChanged ? withFields : undefined)
  )
}

/** An agent's McpServersConnected: True when every server is listed, else which are not and why. */
function connected(servers: readonly InlineMcpServer[], views: readonly McpServerView[]): Verdict {
  const down: string[] = []
  const up: string[] = []
  servers.forEach((server, i) => {
    const view = views[i]
    // The view's own message: the tool count, and what was left out and why.
    if (view?.verdict.status === 'True') up.push(`${server.name}: ${view.verdict.message}`)
    else down.push(`${server.name}: ${view?.verdict.message ?? 'not observed'}`)
  })
  if (down.length === 0) return { status: 'True', reason: 'ToolsDiscovered', message: up.join('; ') }
  return {
    status: 'False',
    reason: 'ServerUnreachable',
    message: `${down.join('; ')}; the agent runs without ${down.length === 1 ? "this server's" : "these servers'"} tools${up.length === 0 ? '' : ` (has ${up.join('; ')})`}`,
  }
}
