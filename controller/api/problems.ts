/**
 * A problem found in a user's manifests, located as precisely as we can: the file, the document in it,
 * the resource it describes, and the field path. Printed by `ark validate`, logged by the store.
 */
export interface Problem {
  readonly severity: 'error' | 'warning'
  readonly file?: string
  /** 0-based index of the document inside a multi-document file. */
  readonly index?: number
  /** 1-based line where the document (or the YAML error) starts. */
  readonly line?: number
  readonly kind?: string
  readonly namespace?: string
  readonly name?: string
  /** Field path inside the document, e.g. `spec.limits.timeoutSeconds` or `spec.tools[1].name`. */
  readonly path?: string
  readonly message: string
}

/** `examples/agents.yaml:12 (document 2) ArkAgent default/research-agent: spec.replicas: must be <= 50, got 51` */
export function formatProblem(p: Problem): string {
  const where: string[] = []
  if (p.file !== undefined) {
    let loc = p.file
    if (p.line !== undefined) loc += `:${p.line}`
    if (p.index !== undefined) loc += ` (document ${p.index + 1})`
    where.push(loc)
  }
  if (p.kind !== undefined || p.name !== undefined) {
    const id = p.name === undefined ? '' : p.namespace === undefined ? p.name : `${p.namespace}/${p.name}`
    where.push([p.kind, id].filter((s) => s !== undefined && s !== '').join(' '))
  }
  const subject = where.join(' ')
  const body = p.path === undefined || p.path === '' ? p.message : `${p.path}: ${p.message}`
  return subject === '' ? body : `${subject}: ${body}`
}
