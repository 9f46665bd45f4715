/**
 * A2A discovery: every A2AServer's agent card is fetched (at its address, `.well-known/agent-card.json`, then
 * the v0.3 `agent.json`) at start and every pollInterval, and what it says is kept:
 * - in the A2AServer's status: the address the card was found at (lastResolvedAddress) and a CardDiscovered
 *   condition, with the reason when the card cannot be had. Availability folds it in, so the A2AServer (Ready
 *   in its dialect) and the agent it made are available or not as the remote comes and goes.
 * - as an Agent of the same name (seed 002's "A2A Agent (Created by A2AServer)"): executionEngine a2a, the
 *   card's description, and the annotations a2a-server-name, -address and -skills. The Agent is the server's
 *   (an ownerReference on a cluster), made and updated here, and goes when the server does. Its calls go
 *   to the remote agent through the gateway's A2A client.
 *
 * The fetch itself is the data plane's (gateway/runtime/providers/a2a.ts), handed in: the controller does not
 * import the SDK. On a cluster the view is the controller's, as for MCP discovery.
 */
import type { ResourceOf, Status } from '../api/index.ts'
import type { Catalog, DerivedWriter, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { withCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export const CARD_DISCOVERED = 'CardDiscovered'

/** What an agent card says that ark keeps. */
export interface DiscoveredCard {
  readonly name: string
  readonly description: string
  readonly skills: readonly { readonly name: string; readonly description: string }[]
  /** Where the card was found: the address agents are called at. */
  readonly address: string
}

export interface A2ADiscoveryOptions {
  /** Fetches the card at `address` with `headers`; rejects with why it could not. */
  readonly fetchCard: (
    address: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ) => Promise<DiscoveredCard>
  /** Longest one fetch may take (default 10 s). */
  readonly timeoutMs?: number
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

const ARK = 'ark.mckinsey.com'
/** The label on the Agents discovery makes: which A2AServer made it. */
const SERVER_LABEL = `${ARK}/a2a-server`

export class A2ADiscoveryController {
  readonly #controller: Controller

  constructor(catalog: Catalog, writer: StatusWriter & DerivedWriter, options: A2ADiscoveryOptions) {
    const now = options.now ?? (() => new Date())
    const timeoutMs = options.timeoutMs ?? 10_000
    this.#controller = new Controller(
      'a2a-discovery',
      catalog,
      async (key, signal) => {
        const server = catalog.store.get(key)
        if (server?.kind !== 'A2AServer') {
          await writer.releaseDerived(key)
          return undefined
        }
        const again = { requeueAfterMs: server.spec.pollIntervalSeconds * 1000 }
        // An Agent of the server's name that it did not make (written by hand, or another dialect's) is not
        // taken over: on a cluster a forced apply would rewrite it and make the server its owner.
        const existing = catalog.get('Agent', server.ref)
        if (existing !== undefined && existing.meta.labels[SERVER_LABEL] !== server.ref.name) {
          const taken: Verdict = {
            status: 'False',
            reason: 'AgentNameTaken',
            message: `an Agent named ${server.ref.name} exists that this A2AServer did not make: rename one of them`,
          }
          // One it made before, which the hand-written one now shadows in a folder, goes.
          await writer.releaseDerived(key)
          await writer.updateStatus(key, (current, latest) =>
            withCondition(current, latest, CARD_DISCOVERED, taken, now),
          )
          return again
        }
        const found = await discover(catalog, server, options.fetchCard, timeoutMs, signal)
        if (signal.aborted) return undefined
        if ('failure' in found) {
          await writer.updateStatus(key, (current, latest) =>
            withCondition(current, latest, CARD_DISCOVERED, found.failure, now),
          )
          // The agent it made stays, unavailable with its server, until the card is back.
          return again
        }
        const { card } = found
        await writer.updateStatus(key, (current, latest) => {
          const withAddress: Status =
            current?.resolvedAddress === card.address
              ? current
              : { conditions: [], ...current, resolvedAddress: card.address }
          const verdict: Verdict = {
            status: 'True',
            reason: 'CardDiscovered',
            message: `agent card "${card.name.slice(0, 100)}" with ${String(card.skills.length)} skill(s)`,
          }
          return (
            withCondition(withAddress, latest, CARD_DISCOVERED, verdict, now) ??
            (withAddress === current ? undefined : withAddress)
          )
        })
        await writer.applyDerived(server, [agentOf(server, card)])
        return again
      },
      // A2AServers; a Secret or ConfigMap with its address or a header value queues its dependents.
      { kinds: new Set(['A2AServer']) },
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
  }
}

async function discover(
  catalog: Catalog,
  server: ResourceOf<'A2AServer'>,
  fetchCard: A2ADiscoveryOptions['fetchCard'],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ readonly card: DiscoveredCard } | { readonly failure: Verdict }> {
  const ns = server.ref.namespace
  const address = catalog.resolveValue(ns, server.spec.address)
  if (!address.ok)
    return { failure: { status: 'False', reason: address.reason, message: `address: ${address.message}` } }
  if (address.value === undefined || address.value === '')
    return {
      failure: { status: 'False', reason: 'AddressMissing', message: 'the address resolves to nothing' },
    }
  const headers: Record<string, string> = {}
  const secrets: string[] = []
  for (const h of server.spec.headers) {
    const v = catalog.resolveValue(ns, h.source)
    if (!v.ok)
      return { failure: { status: 'False', reason: v.reason, message: `headers.${h.name}: ${v.message}` } }
    if (v.value === undefined) continue
    headers[h.name] = v.value
    if ('secretKeyRef' in h.source) secrets.push(v.value)
  }
  // An address kept in a Secret is as secret as a header: neither reaches status, nor the Agent's
  // annotations, which show its origin only (the runtime reads the address from the A2AServer itself).
  const secretAddress = 'secretKeyRef' in server.spec.address
  if (secretAddress) secrets.push(address.value)
  // A cleared timer rather than AbortSignal.timeout, which lives on (and keeps Deno alive) for its whole span.
  const deadline = new AbortController()
  const timer = setTimeout(() => {
    deadline.abort(new DOMException(`no answer within ${String(timeoutMs)} ms`, 'TimeoutError'))
  }, timeoutMs)
  try {
    const card = await fetchCard(address.value, headers, AbortSignal.any([signal, deadline.signal]))
    return { card: secretAddress ? { ...card, address: originOf(card.address) } : card }
  } catch (err) {
    // An address from a Secret is not quoted at all: errors show URLs normalised (host lower-cased, default
    // port dropped), which a search for the Secret's exact text would miss.
    let message = secretAddress
      ? `no A2A agent card at the address in the Secret (${originOf(address.value)})`
      : err instanceof Error
        ? err.message
        : String(err)
    for (const s of secrets) if (s.length >= 4) message = message.split(s).join('[REDACTED]')
    return { failure: { status: 'False', reason: 'CardUnreachable', message: message.slice(0, 1000) } }
  } finally {
    clearTimeout(timer)
  }
}

/** The Agent an A2AServer's card describes, in the ARK dialect, as seed 002 shows it. */
function agentOf(server: ResourceOf<'A2AServer'>, card: DiscoveredCard): Record<string, unknown> {
  const description = server.spec.description ?? card.description
  return {
    apiVersion: `${ARK}/v1alpha1`,
    kind: 'Agent',
    metadata: {
      name: server.ref.name,
      namespace: server.ref.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'ark', [SERVER_LABEL]: server.ref.name },
      annotations: {
        [`${ARK}/a2a-server-name`]: server.ref.name,
        [`${ARK}/a2a-server-address`]: card.address,
        [`${ARK}/a2a-server-skills`]: JSON.stringify(
          card.skills.map((s) => ({ name: s.name, description: s.description })),
        ),
      },
    },
    spec: {
      description,
      prompt: `You are ${card.name}. ${description}`.trim(),
      executionEngine: { name: 'a2a' },
    },
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(an address from a Secret)'
  }
}
