/**
 * Writing one condition that a controller other than availability owns (ModelReachable, ModuleLoaded): the
 * rest of the status is kept as it is, an unchanged verdict writes nothing, and lastTransitionTime moves only
 * when the status does.
 */
import type { AnyResource, Condition } from '../api/index.ts'
import type { Catalog } from '../store/index.ts'
import type { Verdict } from './availability.ts'

/** Sets (or, with `verdict` undefined, removes) condition `type` on the resource's status. */
export function recordCondition(
  catalog: Catalog,
  resource: AnyResource,
  type: string,
  verdict: Verdict | undefined,
  now: () => Date,
  onError: ((key: string, err: unknown) => void) | undefined,
): void {
  const store = catalog.store
  const current = store.status(resource.key)
  const before = current?.conditions.find((c) => c.type === type)
  const others = current?.conditions.filter((c) => c.type !== type) ?? []
  const write = (conditions: Condition[]): void => {
    store
      .writeStatus(resource.key, { ...current, conditions })
      .catch((err: unknown) => onError?.(resource.key, err))
  }
  if (verdict === undefined) {
    if (before !== undefined) write(others)
    return
  }
  if (
    before?.status === verdict.status &&
    before.reason === verdict.reason &&
    before.message === verdict.message
  ) {
    return
  }
  write([
    ...others,
    {
      type,
      ...verdict,
      lastTransitionTime: before?.status === verdict.status ? before.lastTransitionTime : now().toISOString(),
      ...(resource.meta.generation === undefined ? {} : { observedGeneration: resource.meta.generation }),
    },
  ])
}
