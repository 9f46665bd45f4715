/**
 * MCP tool discovery: every ARK MCPServer is connected to, and what the connection knows is kept in its status:
 * the address, the tool count and names, and a ToolsDiscovered condition with the reason when it cannot be
 * reached. Availability folds that condition in, so the MCPServer, the Tools of `type: mcp` on it and the
 * agents that use them become Available or not as the server comes and goes (seed 002's dependency rules).
 *
 * The connection belongs to whoever holds the MCP client (the runtime), and it outlives one reconcile: it
 * reconnects with backoff and follows tools/list_changed, and every change it reports queues the server
 * again. This controller only holds it and records, so it never imports the data plane.
 */
import type { AnyResource, ResourceOf, Status } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { withCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export const TOOLS_DISCOVERED = 'ToolsDiscovered'

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
  /** The view once the current connection attempt has settled, or as it stands when `signal` aborts. */
  settled(signal: AbortSignal): Promise<McpServerView>
  release(): void
}

export interface McpDiscovery {
  /** Holds the server's connection; `onChange` is called whenever its state or tool list changes. */
  observe(server: ResourceOf<'MCPServer'>, onChange: () => void): McpObservation
}

export interface McpDiscoveryOptions {
  readonly discovery: McpDiscovery
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

export class McpDiscoveryController {
  readonly #controller: Controller
  /** The connection held for each MCPServer, by key. */
  readonly #held = new Map<string, McpObservation>()

  constructor(catalog: Catalog, writer: StatusWriter, options: McpDiscoveryOptions) {
    const now = options.now ?? (() => new Date())
    this.#controller = new Controller(
      'mcp-discovery',
      catalog,
      async (key, stop) => {
        const server = catalog.store.get(key)
        const before = this.#held.get(key)
        if (server?.kind !== 'MCPServer') {
          before?.release()
          this.#held.delete(key)
          return undefined
        }
        // A new hold before the old one is let go: the shared connection stays open when nothing that
        // decides it (address, transport, headers) changed, and a new one opens when something did.
        const observation = options.discovery.observe(server, () => this.#controller.enqueue(key))
        before?.release()
        this.#held.set(key, observation)
        const view = await observation.settled(stop)
        if (stop.aborted || catalog.store.get(key) !== server) return undefined
        await writer.updateStatus(key, (current, latest) => discovered(current, latest, view, now))
        return undefined
      },
      // A Secret with a header value changed under its MCPServer: its dependents are queued.
      { kinds: new Set(['MCPServer']) },
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
    for (const observation of this.#held.values()) observation.release()
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
