/** `GET /v1/models`: every agent, team and model a client can name, in OpenAI's list shape. */
import type { Catalog, TargetKind } from '../../controller/store/index.ts'

const PREFIX: Record<TargetKind, string> = { Agent: 'agent', Team: 'team', Model: 'model' }
const KINDS: readonly TargetKind[] = ['Agent', 'Team', 'Model']

export interface ModelEntry {
  readonly id: string
  readonly object: 'model'
  readonly created: number
  readonly owned_by: string
  readonly ark: Readonly<Record<string, string>>
}

export function listModels(
  catalog: Catalog,
  defaultNamespace: string,
): { object: 'list'; data: ModelEntry[] } {
  const data: ModelEntry[] = []
  for (const kind of KINDS) {
    for (const r of catalog.list(kind)) {
      const { namespace, name } = r.ref
      const id =
        namespace === defaultNamespace ? `${PREFIX[kind]}/${name}` : `${PREFIX[kind]}/${namespace}/${name}`
      const available = catalog.status(r.key)?.conditions.find((c) => c.type === 'Available')
      data.push({
        id,
        object: 'model',
        created: created(r.meta.creationTimestamp),
        owned_by: namespace,
        // Beyond OpenAI's fields, as other gateways do: what it is and whether it can serve now.
        ark: {
          kind: r.origin.kind,
          ...(r.kind === 'Model'
            ? {}
            : 'description' in r.spec && r.spec.description !== undefined
              ? { description: r.spec.description }
              : {}),
          available: available?.status ?? 'Unknown',
          ...(available !== undefined && available.status !== 'True' ? { reason: available.reason } : {}),
        },
      })
    }
  }
  data.sort((a, b) => a.id.localeCompare(b.id))
  return { object: 'list', data }
}

function created(timestamp: string | undefined): number {
  const t = timestamp === undefined ? NaN : Date.parse(timestamp)
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000)
}
