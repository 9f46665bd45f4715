/** `GET /v1/models`: every agent, team and model a client can name, in OpenAI's list shape. */
import type { ResourceOf } from '../../controller/api/index.ts'
import type { Principal } from '../auth/scope.ts'
import type { Catalog, TargetKind } from '../../controller/store/index.ts'

const KINDS: readonly TargetKind[] = ['Agent', 'Team', 'Model']

export interface ModelEntry {
  readonly id: string
  readonly object: 'model'
  readonly created: number
  readonly owned_by: string
  readonly ark: Readonly<Record<string, string>>
}

/** What `who` may call (everything without API keys): a key sees nothing it could not call. */
export function listModels(catalog: Catalog, who?: Principal): { object: 'list'; data: ModelEntry[] } {
  const data = KINDS.flatMap((kind) =>
    catalog
      .list(kind)
      .filter((r) => who === undefined || who.allowsTarget(kind, r.ref))
      .map((r) => modelEntry(catalog, kind, r)),
  )
  data.sort((a, b) => a.id.localeCompare(b.id))
  return { object: 'list', data }
}

export function modelEntry(catalog: Catalog, kind: TargetKind, r: ResourceOf<TargetKind>): ModelEntry {
  const available = catalog.available(r.key)
  return {
    id: catalog.targetId(kind, r.ref),
    object: 'model',
    created: created(r.meta.creationTimestamp),
    owned_by: r.ref.namespace,
    // Beyond OpenAI's fields, as other gateways do: what it is and whether it can serve now.
    ark: {
      kind: r.origin.kind,
      ...('description' in r.spec && r.spec.description !== undefined
        ? { description: r.spec.description }
        : {}),
      available: available?.status ?? 'Unknown',
      ...(available !== undefined && available.status !== 'True' ? { reason: available.reason } : {}),
    },
  }
}

function created(timestamp: string | undefined): number {
  const t = timestamp === undefined ? NaN : Date.parse(timestamp)
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000)
}
