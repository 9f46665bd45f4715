/** Test helpers: read fixture manifests without going through the store. */
import { readFileSync } from 'node:fs'
import { parseAllDocuments } from 'yaml'
import { decodeDocument } from '../controller/api/index.ts'
import type { AnyResource, Decoded, Kind, ResourceOf } from '../controller/api/index.ts'
import type { ManifestSource, SourceBatch } from '../controller/store/index.ts'

export function documentsOf(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as unknown)
    .filter((v) => v !== null)
}

export function decodeAll(file: string): Decoded {
  return decodeDocuments(documentsOf(file), file)
}

export function decodeYaml(text: string): Decoded {
  return decodeDocuments(
    parseAllDocuments(text).map((d) => d.toJS() as unknown),
    'inline.yaml',
  )
}

function decodeDocuments(values: unknown[], file: string): Decoded {
  const out: Decoded = { resources: [], problems: [], identities: [] }
  values.forEach((value, index) => {
    const d = decodeDocument({ value, file, index })
    out.resources.push(...d.resources)
    out.problems.push(...d.problems)
    out.identities.push(...d.identities)
  })
  return out
}

export function find<K extends Kind>(
  resources: readonly AnyResource[],
  kind: K,
  name: string,
): ResourceOf<K> {
  const r = resources.find((x) => x.kind === kind && x.ref.name === name)
  if (r === undefined) throw new Error(`no ${kind} ${name} in ${resources.map((x) => x.key).join(', ')}`)
  return r as ResourceOf<K>
}

/** A manifests source held in memory, for a ManifestStore: `replace` swaps its whole text, as an edit would. */
export function memorySource(text: string): ManifestSource & { replace(text: string): void } {
  let deliver: ((batch: SourceBatch) => void) | undefined
  const batch = (t: string): SourceBatch => ({
    changes: [
      {
        file: 'manifests.yaml',
        status: 'loaded',
        documents: parseAllDocuments(t)
          .map((d) => d.toJS() as unknown)
          .map((value, index) => ({ index, line: 1, value })),
        problems: [],
      },
    ],
    folderProblems: [],
  })
  return {
    start(onBatch) {
      deliver = onBatch
      onBatch(batch(text))
      return Promise.resolve()
    },
    rescan: () => Promise.resolve(),
    close: () => Promise.resolve(),
    replace(t) {
      deliver?.(batch(t))
    },
  }
}
