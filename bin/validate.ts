/** `ark validate`: every problem of a manifests folder, errors first, and the agents that are not Available. */
import { formatProblem } from '../controller/api/index.ts'
import type { Problem } from '../controller/api/index.ts'
import type { ControlPlane } from '../controller/index.ts'
import { isConsequential } from '../controller/index.ts'

export function renderValidation(cp: ControlPlane): { text: string; errors: number; warnings: number } {
  const problems: Problem[] = [...cp.store.problems()]
  for (const r of cp.store.list()) {
    const c = cp.catalog.available(r.key)
    if (c === undefined || c.status === 'True') continue
    problems.push({
      // A dependency's trouble is reported on the dependency; a missing feature is not a mistake.
      severity: isConsequential(c.reason) ? 'warning' : 'error',
      ...(r.origin.file === undefined ? {} : { file: r.origin.file }),
      ...(r.origin.index === undefined ? {} : { index: r.origin.index }),
      kind: r.origin.kind,
      namespace: r.ref.namespace,
      name: r.ref.name,
      message: `not Available: ${c.reason}: ${c.message}`,
    })
  }
  const errors = problems.filter((p) => p.severity === 'error')
  const warnings = problems.filter((p) => p.severity === 'warning')
  const lines = [
    ...errors.map((p) => `error: ${formatProblem(p)}`),
    ...warnings.map((p) => `warning: ${formatProblem(p)}`),
  ]
  const count = [...cp.store.list()].length
  lines.push(
    `${String(count)} resource${count === 1 ? '' : 's'}, ${String(errors.length)} error${errors.length === 1 ? '' : 's'}, ${String(warnings.length)} warning${warnings.length === 1 ? '' : 's'}`,
  )
  return { text: lines.join('\n'), errors: errors.length, warnings: warnings.length }
}
