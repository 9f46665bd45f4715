/**
 * What the dashboard (/ui) shows, as one JSON document read from what the gateway already holds: the catalog
 * (agents, teams, models and Queries with their status), the pools' stats, the recent runs and, where this
 * process keeps them, Queries' Events. A key sees only what it may call: the agents, teams and models its scope
 * allows, the runs of those targets, and the Queries all of whose targets it may call.
 *
 * Nothing here holds a secret: model settings, tool configurations and prompts are left out, and a Query's
 * answer is shown as its status has it (cut short), as `kubectl describe query` shows it to whoever may read it.
 */
import type { AnyResource, ObjectRef, QueryTarget, ResourceOf } from '../../controller/api/index.ts'
import type { Catalog, TargetKind } from '../../controller/store/index.ts'
import type { Principal } from '../auth/scope.ts'
import type { PoolStats, TaskQueue } from '../pool/queue.ts'
import { agentKey } from '../runtime/subtasks.ts'
import type { RecentRun, RecentRuns } from './recent-runs.ts'

/** An Event about a Query, as the process that ran it recorded it (seed 000's QueryExecutionStart, ...). */
export interface QueryEvent {
  readonly type: 'Normal' | 'Warning'
  readonly reason: string
  readonly message: string
  /** RFC 3339. */
  readonly at: string
  readonly count?: number
}

/** Queries' Events kept by this process (`ark dev` runs its folder's Queries); absent on a cluster's gateway. */
export type QueryEvents = (namespace: string, name: string) => readonly QueryEvent[] | undefined

export interface StateSources {
  readonly catalog: Catalog
  readonly queue: TaskQueue
  readonly runs: RecentRuns
  readonly queryEvents?: QueryEvents
}

interface Availability {
  readonly status: string
  readonly reason?: string
  readonly message?: string
}

export interface AgentView {
  readonly id: string
  readonly namespace: string
  readonly name: string
  /** As written: Agent, ArkAgent. */
  readonly kind: string
  readonly description?: string
  readonly model: string
  readonly tools: readonly string[]
  readonly available: Availability
  readonly pool?: PoolView
}

export interface PoolView {
  readonly agent: string
  readonly queued: number
  readonly inFlight: number
  readonly concurrency: number
  /** Workers that said they were alive lately (Redis pools); absent for pools in this process. */
  readonly workers?: number
}

export interface TeamView {
  readonly id: string
  readonly namespace: string
  readonly name: string
  readonly kind: string
  readonly description?: string
  readonly strategy: string
  readonly members: readonly string[]
  readonly available: Availability
}

export interface ModelView {
  readonly id: string
  readonly namespace: string
  readonly name: string
  readonly kind: string
  readonly provider: string
  readonly model: string
  readonly available: Availability
}

export interface QueryView {
  readonly namespace: string
  readonly name: string
  readonly targets: readonly string[]
  readonly input: string
  readonly phase: string
  readonly duration?: string
  readonly tokens?: number
  readonly responses: readonly { readonly target: string; readonly phase: string; readonly content: string }[]
  readonly conditions: readonly Availability[]
  /** Absent when this process did not run it (on a cluster: `kubectl describe query` has them). */
  readonly events?: readonly QueryEvent[]
}

export interface DashboardState {
  /** When it was read, RFC 3339. */
  readonly at: string
  /** The key it was read with (its id), when keys are on. */
  readonly key?: string
  readonly agents: readonly AgentView[]
  readonly teams: readonly TeamView[]
  readonly models: readonly ModelView[]
  readonly pools: readonly PoolView[]
  readonly runs: readonly RecentRun[]
  readonly queries: readonly QueryView[]
}

/** The most of a Query's input or answer shown: the dashboard lists, `kubectl describe` has the rest. */
const MAX_TEXT = 2000
/** Queries listed, newest first. */
const MAX_QUERIES = 100

export async function dashboardState(sources: StateSources, who?: Principal): Promise<DashboardState> {
  const { catalog } = sources
  const may = (kind: TargetKind, ref: ObjectRef) => who === undefined || who.allowsTarget(kind, ref)
  // A Query's tool target is no target a key can be scoped to: only a key without a scope sees it.
  const mayRun = (t: QueryTarget, namespace: string) => {
    const kind = TARGET_KINDS[t.type]
    return kind === undefined ? who === undefined || who.unrestricted : may(kind, { namespace, name: t.name })
  }
  const stats = await sources.queue.stats()
  const poolOf = new Map<string, PoolView>(stats.map((p) => [p.pool, poolView(p)]))
  const byName = (a: AnyResource, b: AnyResource) =>
    a.ref.namespace.localeCompare(b.ref.namespace) || a.ref.name.localeCompare(b.ref.name)

  const agents = catalog
    .list('Agent')
    .filter((a) => may('Agent', a.ref))
    .sort(byName)
    .map((a): AgentView => {
      const pool = poolOf.get(agentKey(a.ref))
      return {
        ...identity(catalog, 'Agent', a),
        ...description(a.spec.description),
        model: modelOf(a),
        tools: a.spec.tools.map(toolName),
        available: availability(catalog, a.key),
        ...(pool === undefined ? {} : { pool }),
      }
    })
  const agentIds = new Set(agents.map((a) => agentKey({ namespace: a.namespace, name: a.name })))
  const teams = catalog
    .list('Team')
    .filter((t) => may('Team', t.ref))
    .sort(byName)
    .map((t): TeamView => ({
      ...identity(catalog, 'Team', t),
      ...description(t.spec.description),
      strategy: t.spec.strategy,
      members: t.spec.members.map((m) => `${m.type}/${m.ref.name}`),
      available: availability(catalog, t.key),
    }))
  const models = catalog
    .list('Model')
    .filter((m) => may('Model', m.ref))
    .sort(byName)
    .map((m): ModelView => ({
      ...identity(catalog, 'Model', m),
      provider: m.spec.provider,
      model: 'value' in m.spec.model ? m.spec.model.value : '<from a ConfigMap or Secret>',
      available: availability(catalog, m.key),
    }))
  // Runs of targets the key may call; a run's target names its namespace and name in its id.
  const visibleTargets = new Set([...agents.map((a) => a.id), ...teams.map((t) => t.id)])
  const runs = sources.runs.list((r) => who === undefined || visibleTargets.has(r.target), 100)
  const queries = catalog
    .list('Query')
    .filter((q) => q.spec.targets.every((t) => mayRun(t, q.ref.namespace)))
    .sort((a, b) => created(b) - created(a) || byName(a, b))
    .slice(0, MAX_QUERIES)
    .map((q) => queryView(catalog, q, sources.queryEvents))
  return {
    at: new Date().toISOString(),
    ...(who === undefined ? {} : { key: who.id }),
    agents,
    teams,
    models,
    pools: [...poolOf.values()].filter((p) => agentIds.has(p.agent)),
    runs,
    queries,
  }
}

const TARGET_KINDS: Readonly<Partial<Record<QueryTarget['type'], TargetKind>>> = {
  agent: 'Agent',
  team: 'Team',
  model: 'Model',
}

function identity(catalog: Catalog, kind: TargetKind, r: AnyResource) {
  return {
    id: catalog.targetId(kind, r.ref),
    namespace: r.ref.namespace,
    name: r.ref.name,
    kind: r.origin.kind,
  }
}

function description(text: string | undefined): { description?: string } {
  return text === undefined ? {} : { description: text.slice(0, MAX_TEXT) }
}

function availability(catalog: Catalog, key: string): Availability {
  const c = catalog.available(key)
  if (c === undefined) return { status: 'Unknown' }
  return { status: c.status, reason: c.reason, message: c.message }
}

function modelOf(agent: ResourceOf<'Agent'>): string {
  const model = agent.spec.model
  if (model === undefined) return '<execution engine>'
  return 'ref' in model ? model.ref.name : model.id
}

function toolName(tool: ResourceOf<'Agent'>['spec']['tools'][number]): string {
  switch (tool.kind) {
    case 'builtin':
    case 'inline':
      return tool.name
    case 'ref':
      return tool.as ?? tool.ref.name
    case 'mcpServer':
      return `${tool.server.name}__*`
  }
}

function poolView(p: PoolStats): PoolView {
  return {
    agent: p.pool,
    queued: p.queued,
    inFlight: p.inFlight,
    concurrency: p.concurrency,
    ...(p.workers === undefined ? {} : { workers: p.workers }),
  }
}

function created(q: AnyResource): number {
  const t = q.meta.creationTimestamp === undefined ? NaN : Date.parse(q.meta.creationTimestamp)
  return Number.isNaN(t) ? 0 : t
}

function queryView(catalog: Catalog, q: ResourceOf<'Query'>, events: QueryEvents | undefined): QueryView {
  const status = catalog.status(q.key)
  const input =
    typeof q.spec.input === 'string'
      ? q.spec.input
      : Array.isArray(q.spec.input)
        ? `${String(q.spec.input.length)} messages`
        : ''
  const recorded = events?.(q.ref.namespace, q.ref.name)
  return {
    namespace: q.ref.namespace,
    name: q.ref.name,
    targets: q.spec.targets.map((t) => `${t.type}/${t.name}`),
    input: input.slice(0, MAX_TEXT),
    phase: status?.phase ?? 'pending',
    ...(status?.duration === undefined ? {} : { duration: status.duration }),
    ...(status?.tokenUsage === undefined ? {} : { tokens: status.tokenUsage.totalTokens }),
    responses: (status?.responses ?? []).map((r) => ({
      target: `${r.target.type}/${r.target.name}`,
      phase: r.phase,
      content: r.content.slice(0, MAX_TEXT),
    })),
    conditions: (status?.conditions ?? []).map((c) => ({
      status: c.status,
      reason: c.reason,
      message: c.message,
    })),
    ...(recorded === undefined ? {} : { events: recorded }),
  }
}
