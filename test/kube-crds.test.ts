/**
 * ark's CRDs on a real kube-apiserver (1.20.2, test/kube.ts). Every CRD in deploy/crds installs and becomes
 * Established. For every kind, the representatives in examples/ and test/fixtures/ (kinds/: every field set;
 * seeds/: the seeds' own shapes) are created in a test namespace and read back with the spec they were sent;
 * the status each dialect writes (its own `toStatus`, through `encodeStatus`) is kept by the status
 * subresource; `kubectl get` shows the printer columns with the object's values; short names resolve; the scale
 * subresource scales; and a field of the wrong type is rejected by the server, which names it.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import * as k8s from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { decodeDocument, encodeStatus } from '../controller/api/index.ts'
import type { Status } from '../controller/api/index.ts'
import type { KubeServer } from './kube.ts'
import { startKube } from './kube.ts'

// ---------------------------------------------------------------------------------------------------------
// What is installed: the committed CRDs, read as the server gets them.

interface Schema {
  readonly type?: string
  readonly properties?: Readonly<Record<string, Schema>>
  readonly items?: Schema
  readonly additionalProperties?: Schema | boolean
  readonly default?: unknown
}

interface Column {
  readonly name: string
  readonly type: string
  readonly jsonPath: string
  readonly priority?: number
}

interface Crd {
  readonly file: string
  readonly group: string
  readonly version: string
  readonly kind: string
  readonly plural: string
  readonly shortNames: readonly string[]
  readonly columns: readonly Column[]
  readonly scale?: { readonly specReplicasPath: string; readonly statusReplicasPath: string }
  readonly spec: Schema
  readonly status: Schema
}

const CRD_DIR = 'deploy/crds'

const CRDS: readonly Crd[] = readdirSync(CRD_DIR)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .sort()
  .map((file) => {
    const doc = parse(readFileSync(join(CRD_DIR, file), 'utf8')) as {
      spec: {
        group: string
        names: { kind: string; plural: string; shortNames?: string[] }
        versions: {
          name: string
          additionalPrinterColumns?: Column[]
          subresources?: { scale?: Crd['scale'] }
          schema: { openAPIV3Schema: { properties: { spec: Schema; status: Schema } } }
        }[]
      }
    }
    const version = doc.spec.versions[0]!
    const { spec, status } = version.schema.openAPIV3Schema.properties
    return {
      file,
      group: doc.spec.group,
      version: version.name,
      kind: doc.spec.names.kind,
      plural: doc.spec.names.plural,
      shortNames: doc.spec.names.shortNames ?? [],
      columns: version.additionalPrinterColumns ?? [],
      ...(version.subresources?.scale === undefined ? {} : { scale: version.subresources.scale }),
      spec,
      status,
    }
  })

// ---------------------------------------------------------------------------------------------------------
// What is applied: every document of a CRD kind in these folders, one test namespace per folder.

const SOURCES = [
  { dir: 'examples', prefix: 'examples' },
  { dir: 'test/fixtures/kinds', prefix: 'kinds' },
  { dir: 'test/fixtures/seeds', prefix: 'seeds' },
] as const

type Source = (typeof SOURCES)[number]['dir']

interface Representative {
  readonly crd: Crd
  readonly source: Source
  readonly file: string
  readonly name: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
  readonly spec: Record<string, unknown>
}

interface Manifest {
  apiVersion?: string
  kind?: string
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  spec?: Record<string, unknown>
}

const REPRESENTATIVES: readonly Representative[] = SOURCES.flatMap(({ dir }) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => {
      const file = join(dir, f)
      return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
        const doc = d.toJS() as Manifest | null
        const crd = CRDS.find((c) => doc?.apiVersion === `${c.group}/${c.version}` && doc.kind === c.kind)
        if (doc === null || crd === undefined) return [] // ConfigMaps, Secrets: not ours to install
        const { name, labels, annotations } = doc.metadata ?? {}
        if (name === undefined || doc.spec === undefined)
          throw new Error(`${file}: a ${crd.kind} without name/spec`)
        // Only what a user writes: metadata.namespace (examples hardcode `default`) and the server-owned fields
        // the seed fixtures carry (uid, generation, finalizers, ...) are left out; the status comes later.
        return [
          {
            crd,
            source: dir,
            file,
            name,
            ...(labels === undefined ? {} : { labels }),
            ...(annotations === undefined ? {} : { annotations }),
            spec: doc.spec,
          },
        ]
      })
    }),
)

// Two documents of one kind and name in one folder would land on the same object.
for (const r of REPRESENTATIVES) {
  const same = REPRESENTATIVES.filter((o) => o.crd === r.crd && o.source === r.source && o.name === r.name)
  if (same.length > 1) throw new Error(`${r.crd.kind}/${r.name} is defined twice in ${r.source}`)
}

const representativesOf = (crd: Crd) => REPRESENTATIVES.filter((r) => r.crd === crd)

// ---------------------------------------------------------------------------------------------------------
// The status each dialect writes: one internal status with every part set, rendered by the kind's own toStatus.

const STATUS: Status = {
  conditions: [
    {
      type: 'Available',
      status: 'False',
      reason: 'ModelNotAvailable',
      message: 'spec.modelRef: Model gpt-4o is not available (ProbeFailed)',
      lastTransitionTime: '2025-12-11T11:16:49Z',
      observedGeneration: 1,
    },
  ],
  replicas: 2,
  readyReplicas: 1,
  phase: 'done',
  responses: [
    {
      target: { type: 'agent', name: 'support-agent' },
      content: 'Use the Forgot password link.',
      phase: 'done',
    },
  ],
  tokenUsage: { promptTokens: 146, completionTokens: 145, totalTokens: 291 },
  dailyTokenUsage: { date: '2025-12-11', totalTokens: 1200, limit: 1_000_000 },
  duration: '3.070165248s',
  resolvedAddress: 'http://resolved.test.svc:8080/v1',
  toolCount: 4,
  message: 'written by test/kube-crds.test.ts',
}

/** A spec change per kind (merge patch of spec), to see metadata.generation move. */
const SPEC_CHANGES: Readonly<Record<string, Record<string, unknown>>> = {
  Agent: { description: 'changed by the CRD test' },
  Model: { pollInterval: '2m30s' },
  Tool: { description: 'changed by the CRD test' },
  Team: { description: 'changed by the CRD test' },
  Memory: { headers: [{ name: 'X-Changed', value: { value: 'yes' } }] },
  Query: { sessionId: 'changed-session' },
  MCPServer: { description: 'changed by the CRD test' },
  Evaluation: { timeout: '7m' },
  A2AServer: { description: 'changed by the CRD test' },
  ExecutionEngine: { description: 'changed by the CRD test' },
  ArkAgent: { systemPrompt: 'changed by the CRD test' },
  ArkService: { routing: { strategy: 'random' } },
  ArkTeam: { output: 'changed by the CRD test' },
  ArkSettings: { outputFormat: 'changed-by-the-crd-test' },
  ArkMemory: { redis: { secretRef: { name: 'changed-by-the-crd-test' }, ttlSeconds: 61 } },
}

// ---------------------------------------------------------------------------------------------------------
// The server

interface KubeObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace: string; generation: number; resourceVersion: string }
  spec: Record<string, unknown>
  status?: Record<string, unknown>
}

let server: KubeServer | undefined
let objects: k8s.CustomObjectsApi
let crds: k8s.ApiextensionsV1Api
const namespaces = new Map<Source, string>()

const kube = (): KubeServer => {
  if (server === undefined) throw new Error('the kube-apiserver did not start')
  return server
}
const namespaceOf = (source: Source): string => {
  const ns = namespaces.get(source)
  if (ns === undefined) throw new Error(`no namespace for ${source}`)
  return ns
}
const where = (crd: Crd, namespace: string) => ({
  group: crd.group,
  version: crd.version,
  namespace,
  plural: crd.plural,
})
const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)

async function read(r: Representative): Promise<KubeObject> {
  return (await objects.getNamespacedCustomObject({
    ...where(r.crd, namespaceOf(r.source)),
    name: r.name,
  })) as KubeObject
}

beforeAll(async () => {
  server = await startKube()
  await server.installCrds()
  const config = server.config()
  objects = config.makeApiClient(k8s.CustomObjectsApi)
  crds = config.makeApiClient(k8s.ApiextensionsV1Api)
  for (const { dir, prefix } of SOURCES) namespaces.set(dir, await server.namespace(prefix))
}, 120_000)

afterAll(async () => {
  await server?.stop()
})

// ---------------------------------------------------------------------------------------------------------

describe('ark CRDs on a real kube-apiserver', () => {
  it('every CRD in deploy/crds is Established, its names accepted, with the printer columns it declares', async () => {
    const kustomization = parse(readFileSync(join(CRD_DIR, 'kustomization.yaml'), 'utf8')) as {
      resources: string[]
    }
    expect(CRDS.map((c) => c.file)).toEqual([...kustomization.resources].sort())
    const served = (await crds.listCustomResourceDefinition()).items
    for (const crd of CRDS) {
      const s = served.find((c) => c.metadata?.name === `${crd.plural}.${crd.group}`)
      expect(s, crd.file).toBeDefined()
      const conditions = Object.fromEntries((s!.status?.conditions ?? []).map((c) => [c.type, c.status]))
      expect(conditions, crd.file).toMatchObject({ Established: 'True', NamesAccepted: 'True' })
      expect(s!.status?.acceptedNames?.shortNames ?? [], crd.file).toEqual(crd.shortNames)
      // toEqual, not toStrictEqual: the client returns its model classes, the file plain objects.
      expect(s!.spec.versions[0]?.additionalPrinterColumns ?? [], crd.file).toEqual(crd.columns)
    }
  })

  it('every kind has representatives in examples/ or test/fixtures/', () => {
    expect(CRDS.filter((c) => representativesOf(c).length === 0).map((c) => c.kind)).toEqual([])
    expect(CRDS.filter((c) => SPEC_CHANGES[c.kind] === undefined).map((c) => c.kind)).toEqual([])
  })

  describe.each(CRDS.map((c) => [`${c.kind} (${c.plural}.${c.group})`, c] as const))('%s', (_, crd) => {
    it('each representative is created and read back with the spec it was sent: nothing pruned, only schema defaults added', async () => {
      await each(representativesOf(crd), async (r) => {
        await objects.createNamespacedCustomObject({
          ...where(crd, namespaceOf(r.source)),
          body: {
            apiVersion: `${crd.group}/${crd.version}`,
            kind: crd.kind,
            metadata: {
              name: r.name,
              ...(r.labels === undefined ? {} : { labels: r.labels }),
              ...(r.annotations === undefined ? {} : { annotations: r.annotations }),
            },
            spec: r.spec,
          },
        })
        const got = await read(r)
        expect(got.spec, `${r.file}: ${r.name}`).toEqual(withDefaults(r.spec, crd.spec))
        expect(got.metadata.generation, `${r.file}: ${r.name}`).toBe(1)
      })
    })

    it('the status subresource keeps the status this dialect writes (merge patch), and leaves generation alone', async () => {
      await each(representativesOf(crd), async (r) => {
        const before = await read(r)
        const status = dialectStatus(before)
        expect(status.conditions, `${r.name}: the dialect writes conditions`).toEqual(
          expect.arrayContaining([expect.objectContaining({ status: 'False', reason: 'ModelNotAvailable' })]),
        )
        await objects.patchNamespacedCustomObjectStatus(
          { ...where(crd, namespaceOf(r.source)), name: r.name, body: { status } },
          MERGE_PATCH,
        )
        const after = await read(r)
        expect(after.status, `${r.file}: ${r.name}`).toEqual(withDefaults(status, crd.status))
        expect(after.spec, `${r.file}: ${r.name}`).toEqual(before.spec)
        expect(after.metadata.generation, `${r.file}: ${r.name}`).toBe(1)
      })
    })

    it('a spec change bumps metadata.generation and keeps the status', async () => {
      const r = representativesOf(crd)[0]!
      const before = await read(r)
      const change = SPEC_CHANGES[crd.kind]!
      await objects.patchNamespacedCustomObject(
        { ...where(crd, namespaceOf(r.source)), name: r.name, body: { spec: change } },
        MERGE_PATCH,
      )
      const after = await read(r)
      expect(after.spec).toMatchObject(change)
      expect(after.spec).not.toEqual(before.spec)
      expect(after.metadata.generation).toBe(before.metadata.generation + 1)
      expect(after.status).toEqual(before.status)
    })

    it('kubectl get shows its printer columns, with each object’s values; every status column is filled', async () => {
      const wanted = crd.columns.filter((c) => (c.priority ?? 0) === 0).map((c) => c.name.toUpperCase())
      await each([...new Set(representativesOf(crd).map((r) => r.source))], async (source) => {
        const ns = namespaceOf(source)
        const [plain, wide] = await Promise.all([
          kube().kubectl(['get', crd.plural, '-n', ns]).then(parseTable),
          kube().kubectl(['get', crd.plural, '-n', ns, '-o', 'wide']).then(parseTable),
        ])
        expect(plain.headers).toEqual(['NAME', ...wanted])
        expect(wide.headers).toEqual(['NAME', ...crd.columns.map((c) => c.name.toUpperCase())])
        await each(
          representativesOf(crd).filter((x) => x.source === source),
          async (r) => {
            const object = await read(r)
            const row = rowOf(wide, r.name)
            for (const c of crd.columns) {
              const cell = row[c.name.toUpperCase()]
              if (c.type === 'date') {
                expect(cell, `${r.name} ${c.name}`).toMatch(/^\d+[smhd]/)
                continue
              }
              expect(cell, `${r.name} ${c.name} (${c.jsonPath})`).toBe(printed(jsonPath(object, c.jsonPath)))
              // A status column that the dialect's own status leaves empty names the wrong field or condition.
              if (c.jsonPath.startsWith('.status'))
                expect(cell, `${r.name} ${c.name} (${c.jsonPath})`).not.toBe('')
            }
          },
        )
      })
    })
  })

  it('short names resolve to their kind, and none shadows another resource on the server', async () => {
    const resources = parseTable(await kube().kubectl(['api-resources']))
    const ns = namespaceOf('test/fixtures/kinds')
    const withShortNames = CRDS.filter((c) => c.shortNames.length > 0)
    expect(withShortNames.map((c) => c.plural)).toEqual(
      expect.arrayContaining(['arkagents', 'queries', 'mcpservers', 'a2aservers']),
    )
    const shorts = withShortNames.flatMap((crd) => crd.shortNames.map((short) => ({ crd, short })))
    await each(shorts, async ({ crd, short }) => {
      const owners = resources.rows.filter((row) => (row.SHORTNAMES ?? '').split(',').includes(short))
      expect(
        owners.map((o) => `${o.NAME}/${o.APIVERSION}`),
        short,
      ).toEqual([`${crd.plural}/${crd.group}/${crd.version}`])
      const [byShort, byPlural] = await Promise.all([
        kube().kubectl(['get', short, '-n', ns, '-o', 'name']),
        kube().kubectl(['get', `${crd.plural}.${crd.group}`, '-n', ns, '-o', 'name']),
      ])
      expect(byShort, short).toBe(byPlural)
      expect(byShort, short).toContain(`${crd.kind.toLowerCase()}.${crd.group}/`)
    })
  })

  it('agents: MODEL is the model ref, AVAILABLE and REASON come from the Available condition', async () => {
    const table = parseTable(await kube().kubectl(['get', 'agents', '-n', namespaceOf('examples')]))
    expect(table.headers).toEqual(['NAME', 'MODEL', 'AVAILABLE', 'REASON', 'AGE'])
    expect(rowOf(table, 'trip-planner')).toMatchObject({
      MODEL: 'gpt-4o',
      AVAILABLE: 'False',
      REASON: 'ModelNotAvailable',
    })
    // No modelRef: the namespace's `default` Model is used, and the column stays empty.
    expect(rowOf(table, 'support-agent')).toMatchObject({ MODEL: '', AVAILABLE: 'False' })
  })

  it('queries: TARGET is targets[0], PHASE, DURATION and TOKENS come from the status seed 000 shows', async () => {
    const crd = CRDS.find((c) => c.plural === 'queries')!
    const ns = namespaceOf('test/fixtures/seeds')
    // The status of `kubectl describe query test-password-reset` in seed 000, verbatim.
    const seed = parse(readFileSync('test/fixtures/seeds/000-query.yaml', 'utf8')) as { status: object }
    await objects.patchNamespacedCustomObjectStatus(
      { ...where(crd, ns), name: 'test-password-reset', body: { status: seed.status } },
      MERGE_PATCH,
    )
    const stored = (await objects.getNamespacedCustomObject({
      ...where(crd, ns),
      name: 'test-password-reset',
    })) as KubeObject
    expect(stored.status).toEqual(seed.status)

    const table = parseTable(await kube().kubectl(['get', 'queries', '-n', ns]))
    expect(table.headers).toEqual(['NAME', 'TARGET', 'PHASE', 'DURATION', 'TOKENS', 'AGE'])
    expect(rowOf(table, 'test-password-reset')).toMatchObject({
      TARGET: 'support-agent',
      PHASE: 'done',
      DURATION: '3.070165248s',
      TOKENS: '291',
    })
    // full-query sets both `target` (full-agent) and `targets` (full-team): a column shows one path.
    const kinds = parseTable(
      await kube().kubectl(['get', 'queries', '-n', namespaceOf('test/fixtures/kinds')]),
    )
    expect(rowOf(kinds, 'full-query')).toMatchObject({ TARGET: 'full-team', PHASE: 'done', TOKENS: '291' })
  })

  it('arkagents: MODEL, REPLICAS and READY; kubectl scale sets spec.replicas through the scale subresource', async () => {
    const scalable = CRDS.filter((c) => c.scale !== undefined)
    expect(scalable.map((c) => c.kind)).toContain('ArkAgent')
    const ns = namespaceOf('examples')

    const table = parseTable(await kube().kubectl(['get', 'arkagents', '-n', ns]))
    expect(table.headers).toEqual(['NAME', 'MODEL', 'REPLICAS', 'READY', 'AGE'])
    expect(rowOf(table, 'research-agent')).toMatchObject({ MODEL: 'llama3.2', REPLICAS: '2', READY: '1' })

    for (const crd of scalable) {
      const r = representativesOf(crd)[0]!
      const before = await read(r)
      await kube().kubectl([
        'scale',
        crd.kind.toLowerCase(),
        r.name,
        '-n',
        namespaceOf(r.source),
        '--replicas',
        '3',
      ])
      const after = await read(r)
      expect(jsonPath(after, crd.scale!.specReplicasPath)).toBe(3)
      expect(after.metadata.generation).toBe(before.metadata.generation + 1)
      expect(after.status).toEqual(before.status)
      const scale = (await objects.getNamespacedCustomObjectScale({
        ...where(crd, namespaceOf(r.source)),
        name: r.name,
      })) as { spec?: { replicas?: number }; status?: { replicas?: number } }
      expect(scale.spec?.replicas).toBe(3)
      expect(scale.status?.replicas).toBe(jsonPath(after, crd.scale!.statusReplicasPath))
    }

    // What was asked for and what the pool has, side by side.
    const wide = parseTable(await kube().kubectl(['get', 'arkagents', '-n', ns, '-o', 'wide']))
    expect(rowOf(wide, 'research-agent')).toMatchObject({ REPLICAS: '2', READY: '1', DESIRED: '3' })
  })

  const INVALID = [
    {
      plural: 'arkagents',
      spec: { model: 'gpt-4o', systemPrompt: 'Hi.', replicas: 'three' },
      field: 'spec.replicas',
      message: /spec\.replicas in body must be of type integer/,
    },
    {
      plural: 'agents',
      spec: { prompt: 'Hi.', tools: [{ type: 'built-in', name: 42 }] },
      field: 'spec.tools[0].name',
      // 1.20 leaves list indexes out of the path (spec.tools.name); later servers put them in.
      message: /spec\.tools(\[0\])?\.name in body must be of type string/,
    },
    {
      plural: 'queries',
      spec: { input: 'hi', targets: [{ type: 'agent', name: 'a' }], timeout: 300 },
      field: 'spec.timeout',
      message: /spec\.timeout in body must be of type string/,
    },
    {
      plural: 'models',
      spec: { provider: 'openai', model: 'gpt-4o' },
      field: 'spec.model',
      message: /spec\.model in body must be of type object/,
    },
  ]

  it.each(INVALID)(
    'a $plural with $field of the wrong type is rejected by the server, naming the field',
    async ({ plural, spec, message }) => {
      const crd = CRDS.find((c) => c.plural === plural)!
      const ns = namespaceOf('examples')
      const name = `invalid-${plural}`
      const error = await objects
        .createNamespacedCustomObject({
          ...where(crd, ns),
          body: { apiVersion: `${crd.group}/${crd.version}`, kind: crd.kind, metadata: { name }, spec },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(error).toBeInstanceOf(k8s.ApiException)
      const e = error as k8s.ApiException<unknown>
      expect(e.code).toBe(422)
      expect(messageOf(e.body)).toMatch(message)
      const gone = await objects.getNamespacedCustomObject({ ...where(crd, ns), name }).then(
        () => 'exists',
        (err: unknown) => (err instanceof k8s.ApiException ? err.code : err),
      )
      expect(gone).toBe(404)
    },
  )
})

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** The status the controller would write for this object, in its dialect (the kind's own toStatus). */
function dialectStatus(object: KubeObject): Record<string, unknown> {
  const decoded = decodeDocument({ value: object }, object.metadata.namespace)
  const resource = decoded.resources.find(
    (r) =>
      r.origin.kind === object.kind && r.ref.name === object.metadata.name && r.origin.ownerKey === undefined,
  )
  if (resource === undefined) {
    const problems = decoded.problems.map((p) => `${p.path ?? ''}: ${p.message}`).join('; ')
    throw new Error(`${object.kind}/${object.metadata.name} does not decode: ${problems}`)
  }
  const status = encodeStatus(resource, STATUS)
  if (status === undefined) throw new Error(`${object.kind} writes no status`)
  return status
}

/** Runs `f` on every item at once: the objects are independent, and the server answers in parallel. */
async function each<T>(items: readonly T[], f: (item: T) => Promise<void>): Promise<void> {
  await Promise.all(items.map(f))
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * The apiserver's structural defaulting: a missing property with a default gets it, then defaulting goes on
 * inside every value (including the defaults just set), through objects, maps and list items.
 */
function withDefaults(value: unknown, schema: Schema): unknown {
  if (Array.isArray(value)) {
    const items = schema.items
    return items === undefined ? value : value.map((v) => withDefaults(v, items))
  }
  if (!isRecord(value)) return value
  const out: Record<string, unknown> = { ...value }
  const properties = schema.properties ?? {}
  for (const [k, s] of Object.entries(properties)) {
    if (!(k in out) && s.default !== undefined) out[k] = structuredClone(s.default)
  }
  const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined
  for (const [k, v] of Object.entries(out)) {
    const s = properties[k] ?? extra
    if (s !== undefined) out[k] = withDefaults(v, s)
  }
  return out
}

/**
 * The printer-column JSONPath subset the CRDs use (`.a.b`, `[0]`, `[?(@.type=="X")]`), first result as the
 * apiserver takes it. Anything else throws, so a new kind of column gets a look here.
 */
function jsonPath(object: unknown, path: string): unknown {
  const step = /\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_]+)=="([^"]*)"\)\]/y
  let values: unknown[] = [object]
  let at = 0
  while (at < path.length) {
    step.lastIndex = at
    const m = step.exec(path)
    if (m === null) throw new Error(`unsupported jsonPath ${path} (at ${String(at)})`)
    at = step.lastIndex
    const [, key, index, field, equals] = m
    values = values.flatMap((v): unknown[] => {
      if (key !== undefined) return isRecord(v) && key in v ? [v[key]] : []
      if (index !== undefined) return Array.isArray(v) && Number(index) < v.length ? [v[Number(index)]] : []
      return Array.isArray(v) ? v.filter((e) => isRecord(e) && e[field!] === equals) : []
    })
  }
  return values[0]
}

/** How kubectl prints a cell. */
function printed(value: unknown): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value)
}

interface Table {
  readonly headers: string[]
  readonly rows: Record<string, string>[]
}

/** kubectl's aligned table: each cell starts where its header starts (empty cells stay empty). */
function parseTable(text: string): Table {
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  const header = lines[0] ?? ''
  const starts = [...header.matchAll(/\S+/g)].map((m) => m.index)
  const headers = starts.map((s, i) => header.slice(s, starts[i + 1]).trim())
  const rows = lines
    .slice(1)
    .map((line) =>
      Object.fromEntries(headers.map((h, i) => [h, line.slice(starts[i], starts[i + 1]).trim()])),
    )
  return { headers, rows }
}

function rowOf(table: Table, name: string): Record<string, string> {
  const row = table.rows.find((r) => r.NAME === name)
  if (row === undefined) throw new Error(`no row ${name} in ${table.rows.map((r) => r.NAME).join(', ')}`)
  return row
}

/** The message of a Kubernetes Status error body, whether the client parsed it or not. */
function messageOf(body: unknown): string {
  const parsed: unknown = typeof body === 'string' ? JSON.parse(body) : body
  return isRecord(parsed) && typeof parsed.message === 'string' ? parsed.message : JSON.stringify(body)
}
