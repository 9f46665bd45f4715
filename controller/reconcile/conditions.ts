/**
 * Status conditions, one at a time. Each controller owns one condition type (Available, ModelReachable,
 * ModuleLoaded, Completed) and writes only that one: the rest of the status is kept as it is, an unchanged
 * verdict writes nothing, and lastTransitionTime moves only when the status flips, as Kubernetes conditions do.
 * The change is a pure function of the current status, so a cluster backend that loses a write race re-reads
 * and applies it again.
 */
import type { AnyResource, Condition, Status } from '../api/index.ts'
import type { StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'

/** Sets condition `type` (or, with `verdict` undefined, removes it). Resolves when the write landed. */
export function setCondition(
  writer: StatusWriter,
  resource: AnyResource,
  type: string,
  verdict: Verdict | undefined,
  now: () => Date = () => new Date(),
): Promise<void> {
  return writer.updateStatus(resource.key, (current, latest) =>
    withCondition(current, latest, type, verdict, now),
  )
}

/** The status with condition `type` set to `verdict`; undefined when that changes nothing. */
export function withCondition(
  current: Status | undefined,
  resource: AnyResource,
  type: string,
  verdict: Verdict | undefined,
  now: () => Date,
): Status | undefined {
  const conditions = current?.conditions ?? []
  const before = conditions.find((c) => c.type === type)
  const others = conditions.filter((c) => c.type !== type)
  if (verdict === undefined) return before === undefined ? undefined : { ...current, conditions: others }
  const generation = resource.meta.generation
  if (
    before?.status === verdict.status &&
    before.reason === verdict.reason &&
    before.message === verdict.message &&
    before.observedGeneration === generation
  ) {
    return undefined
  }
  const condition: Condition = {
    type,
    ...verdict,
    lastTransitionTime: before?.status === verdict.status ? before.lastTransitionTime : now().toISOString(),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  }
  return { ...current, conditions: [...others, condition] }
}
