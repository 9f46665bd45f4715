/** `ark get`: a kubectl-like view of the resources in a manifests folder. */
import { stringify } from 'yaml'
import { KINDS } from '../controller/api/index.ts'
import type { AnyResource, Kind } from '../controller/api/index.ts'
import type { Catalog, ResourceView } from '../controller/index.ts'
import { textTable } from './table.ts'

/** What `ark get` reads: a folder's control plane or a cluster's catalog. */
export interface CatalogView {
  readonly catalog: Catalog
  readonly store: ResourceView
}

interface KindFilter {
  readonly kind: Kind
  /** Only resources written in this dialect kind (`arkagents` lists ArkAgents only). */
  readonly originKind?: string
}

const ALIASES: Record<string, KindFilter> = {}
function alias(names: string[], filter: KindFilter) {
  for (const n of names) ALIASES[n] = filter
}
alias(['agent', 'agents', 'ag'], { kind: 'Agent' })
alias(['arkagent', 'arkagents', 'aoagent'], { kind: 'Agent', originKind: 'ArkAgent' })
alias(['model', 'models'], { kind: 'Model' })
alias(['tool', 'tools'], { kind: 'Tool' })
alias(['team', 'teams'], { kind: 'Team' })
alias(['arkteam', 'arkteams'], { kind: 'Team', originKind: 'ArkTeam' })
alias(['memory', 'memories'], { kind: 'Memory' })
alias(['arkmemory', 'arkmemories'], { kind: 'Memory', originKind: 'ArkMemory' })
alias(['query', 'queries'], { kind: 'Query' })
alias(['mcpserver', 'mcpservers'], { kind: 'MCPServer' })
alias(['a2aserver', 'a2aservers'], { kind: 'A2AServer' })
alias(['executionengine', 'executionengines'], { kind: 'ExecutionEngine' })
alias(['evaluation', 'evaluations'], { kind: 'Evaluation' })
alias(['service', 'services', 'arkservice', 'arkservices', 'aosvc'], { kind: 'AgentService' })
alias(['settings', 'arksettings'], { kind: 'Settings' })
alias(['configmap', 'configmaps', 'cm'], { kind: 'ConfigMap' })
alias(['secret', 'secrets'], { kind: 'Secret' })

// Everything but the inputs, as `kubectl get all` leaves out ConfigMaps and Secrets.
const ALL: KindFilter[] = KINDS.filter((kind) => kind !== 'ConfigMap' && kind !== 'Secret').map((kind) => ({
  kind,
}))

export function resolveKind(name: string): KindFilter[] | undefined {
  if (name === 'all') return ALL
  const f = ALIASES[name.toLowerCase()]
  return f === undefined ? undefined : [f]
}

export interface GetOptions {
  readonly name?: string
  /** undefined: every namespace. */
  readonly namespace: string | undefined
  readonly output: 'table' | 'wide' | 'name' | 'yaml' | 'json'
}

type Column = [header: string, value: (r: AnyResource) => string]

function detailColumns(kind: Kind): Column[] {
  switch (kind) {
    case 'Agent':
      return [
        [
          'MODEL',
          (r) =>
            r.kind !== 'Agent' || r.spec.model === undefined
              ? '<engine>'
              : 'ref' in r.spec.model
                ? r.spec.model.ref.name
                : r.spec.model.id,
        ],
        ['TOOLS', (r) => (r.kind === 'Agent' ? String(r.spec.tools.length) : '')],
      ]
    case 'Model':
      return [
        ['PROVIDER', (r) => (r.kind === 'Model' ? r.spec.provider : '')],
        ['MODEL', (r) => (r.kind === 'Model' && 'value' in r.spec.model ? r.spec.model.value : '<ref>')],
      ]
    case 'Tool':
      return [['TYPE', (r) => (r.kind === 'Tool' ? r.spec.type : '')]]
    case 'Team':
      return [
        ['STRATEGY', (r) => (r.kind === 'Team' ? r.spec.strategy : '')],
        ['MEMBERS', (r) => (r.kind === 'Team' ? String(r.spec.members.length) : '')],
      ]
    case 'Query':
      return [
        [
          'TARGETS',
          (r) => (r.kind === 'Query' ? r.spec.targets.map((t) => `${t.type}/${t.name}`).join(',') : ''),
        ],
      ]
    case 'ConfigMap':
    case 'Secret':
      // Like kubectl: how many keys, never what they hold.
      return [
        [
          'DATA',
          (r) =>
            r.kind === 'ConfigMap'
              ? String(Object.keys(r.spec.data).length + Object.keys(r.spec.binaryData).length)
              : r.kind === 'Secret'
                ? String(Object.keys(r.spec.data).length)
                : '',
        ],
      ]
    default:
      return []
  }
}

export function renderGet(
  cp: CatalogView,
  filters: KindFilter[],
  options: GetOptions,
): { text: string; found: boolean } {
  const pick = (f: KindFilter): AnyResource[] =>
    (cp.catalog.list(f.kind) as AnyResource[])
      .filter((r) => f.originKind === undefined || r.origin.kind === f.originKind)
      .filter((r) => options.namespace === undefined || r.ref.namespace === options.namespace)
      .filter((r) => options.name === undefined || r.ref.name === options.name)
      .sort((a, b) => a.ref.namespace.localeCompare(b.ref.namespace) || a.ref.name.localeCompare(b.ref.name))
  const groups = filters.map((f) => ({ f, items: pick(f) })).filter((g) => g.items.length > 0)
  const found = groups.length > 0
  if (options.output === 'name') {
    return {
      text: groups
        .flatMap((g) => g.items.map((r) => `${r.origin.kind.toLowerCase()}/${r.ref.name}`))
        .join('\n'),
      found,
    }
  }
  if (options.output === 'json' || options.output === 'yaml') {
    const items = groups.flatMap((g) => g.items.map((r) => view(cp, r)))
    const doc = items.length === 1 && options.name !== undefined ? items[0] : { items }
    return {
      text: options.output === 'json' ? JSON.stringify(doc, null, 2) : stringify(doc).trimEnd(),
      found,
    }
  }
  const blocks = groups.map(({ f, items }) => {
    const columns: Column[] = [
      ...(options.namespace === undefined ? ([['NAMESPACE', (r) => r.ref.namespace]] as Column[]) : []),
      ['NAME', (r) => r.ref.name],
      ['KIND', (r) => r.origin.kind],
      ...detailColumns(f.kind),
    ]
    const hasCondition = items.some((r) => available(cp, r) !== undefined)
    if (hasCondition) {
      columns.push(['AVAILABLE', (r) => available(cp, r)?.status ?? 'Unknown'])
      columns.push(['REASON', (r) => available(cp, r)?.reason ?? ''])
      if (options.output === 'wide') columns.push(['MESSAGE', (r) => available(cp, r)?.message ?? ''])
    }
    if (f.kind === 'Query') columns.push(['PHASE', (r) => cp.store.status(r.key)?.phase ?? 'pending'])
    return table(columns, items)
  })
  return { text: blocks.join('\n\n'), found }
}

function available(cp: CatalogView, r: AnyResource) {
  return cp.catalog.available(r.key)
}

/** ark's resolved view: how it understood the manifest, and the status in the resource's own dialect. */
function view(cp: CatalogView, r: AnyResource): Record<string, unknown> {
  const status = cp.store.dialectStatus(r.key)
  return {
    key: r.key,
    origin: { ...r.origin },
    metadata: { name: r.ref.name, namespace: r.ref.namespace, ...r.meta },
    // Secret values never leave the process.
    spec: r.kind === 'Secret' ? { type: r.spec.type, keys: Object.keys(r.spec.data) } : r.spec,
    ...(status === undefined ? {} : { status }),
  }
}

function table(columns: Column[], rows: AnyResource[]): string {
  const cells = rows.map((r) => columns.map(([, v]) => v(r).replaceAll('\n', ' ')))
  return textTable([columns.map(([h]) => h), ...cells])
}
