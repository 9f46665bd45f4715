/**
 * Where a process's time went, from the `.cpuprofile` that `node --cpu-prof` writes when it exits: the
 * non-idle samples attributed to the innermost frame that belongs to a package (`undici`,
 * `@kubernetes/client-node`) or to one of ark's files, so that a line reads "27% undici" rather than a list of
 * Node internals. Samples of Node's own code with nothing of a package or of ark above them are grouped by
 * their outermost internal module; GC has its own line.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
  readonly children?: readonly number[]
}

interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface ProfileShare {
  readonly what: string
  /** Share of the non-idle samples, 0..1. */
  readonly share: number
}

function owner(url: string, root: string): string | undefined {
  if (url === '' || url.startsWith('node:')) return undefined
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg?.[1] !== undefined) return pkg[1]
  const at = url.indexOf(root)
  return at >= 0 ? url.slice(at + root.length) : url
}

/** Non-idle time by package or ark file, largest first. `root` is the repository path as it appears in URLs. */
export function profileByOwner(path: string, root: string): ProfileShare[] {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const time = new Map<number, number>()
  profile.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const totals = new Map<string, number>()
  let busy = 0
  for (const [id, t] of time) {
    const leaf = byId.get(id)?.callFrame
    if (leaf === undefined || leaf.functionName === '(idle)') continue
    busy += t
    let what: string | undefined = leaf.functionName === '(garbage collector)' ? 'GC' : undefined
    let outermostInternal: string | undefined
    for (let cur: number | undefined = id; what === undefined && cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur)?.callFrame.url ?? ''
      if (url.startsWith('node:')) outermostInternal = url
      what = owner(url, root)
    }
    what ??= outermostInternal ?? leaf.functionName
    totals.set(what, (totals.get(what) ?? 0) + t)
  }
  return [...totals]
    .map(([what, t]) => ({ what, share: busy === 0 ? 0 : t / busy }))
    .sort((a, b) => b.share - a.share)
}
