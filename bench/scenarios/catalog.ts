/**
 * Catalog benchmark: how long 1,000 agents' manifests take to load (read, validate, adapt, index, reconcile
 * availability), and what a target lookup costs next to a bare Map.get of the same size (the baseline,
 * measured in the same run). Run: `npm run bench` (uses --expose-gc for the allocation figure).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlPlane } from '../controller/index.ts'

const AGENTS = 1000
const FILES = 10
const RUNS = 7
const LOOKUPS = 2_000_000

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? NaN
}

async function writeManifests(dir: string): Promise<void> {
  await writeFile(
    join(dir, 'model.yaml'),
    'apiVersion: ark.mckinsey.com/v1alpha1\nkind: Model\nmetadata: { name: default }\nspec: { provider: mock, model: { value: mock } }\n',
  )
  const per = AGENTS / FILES
  for (let f = 0; f < FILES; f++) {
    const docs: string[] = []
    for (let i = 0; i < per; i++) {
      const n = f * per + i
      // Alternate dialects so both adapters are on the measured path.
      docs.push(
        n % 2 === 0
          ? `apiVersion: ark.mckinsey.com/v1alpha1\nkind: Agent\nmetadata: { name: agent-${n} }\nspec:\n  prompt: "You are agent {{.n}}."\n  parameters: [{ name: n, value: "${n}" }]\n  tools: [{ type: built-in, name: calculator }]\n`
          : `apiVersion: arkonis.dev/v1alpha1\nkind: ArkAgent\nmetadata: { name: agent-${n} }\nspec:\n  replicas: 2\n  model: mock\n  systemPrompt: You are agent ${n}.\n  limits: { timeoutSeconds: 60 }\n`,
      )
    }
    await writeFile(join(dir, `agents-${f}.yaml`), docs.join('---\n'))
  }
}

function heapPerOp(fn: () => void, ops: number): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return NaN
  gc()
  const before = process.memoryUsage().heapUsed
  fn()
  const after = process.memoryUsage().heapUsed
  return Math.max(0, (after - before) / ops)
}

const dir = await mkdtemp(join(tmpdir(), 'ark-bench-catalog-'))
try {
  await writeManifests(dir)
  const loads: number[] = []
  let cp = await startControlPlane(dir, { watch: false })
  await cp.close()
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    cp = await startControlPlane(dir, { watch: false })
    loads.push(performance.now() - t0)
    if (i < RUNS - 1) await cp.close()
  }
  const agents = cp.catalog.count('Agent')
  const availableCount = cp.catalog
    .list('Agent')
    .filter((a) => cp.store.status(a.key)?.conditions.some((c) => c.status === 'True')).length

  const names = Array.from({ length: AGENTS }, (_, i) => `agent/agent-${String(i)}`)
  const baseline = new Map(names.map((n) => [n, { n }]))
  let sink = 0
  const lookupCatalog = () => {
    for (let i = 0; i < LOOKUPS; i++)
      if (cp.catalog.resolveTarget(names[i % AGENTS] ?? '') !== undefined) sink++
  }
  const lookupBaseline = () => {
    for (let i = 0; i < LOOKUPS; i++) if (baseline.get(names[i % AGENTS] ?? '') !== undefined) sink++
  }
  const time = (fn: () => void) => {
    const xs: number[] = []
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now()
      fn()
      xs.push(((performance.now() - t0) * 1e6) / LOOKUPS)
    }
    return median(xs)
  }
  lookupCatalog()
  lookupBaseline()
  const nsCatalog = time(lookupCatalog)
  const nsBaseline = time(lookupBaseline)
  const bytes = heapPerOp(lookupCatalog, LOOKUPS)
  await cp.close()

  const rows = [
    [
      'load 1,000 agents (median of 7)',
      `${median(loads).toFixed(1)} ms`,
      `${String(agents)} agents, ${String(availableCount)} Available`,
    ],
    [
      'resolveTarget',
      `${nsCatalog.toFixed(1)} ns/op`,
      `baseline Map.get ${nsBaseline.toFixed(1)} ns/op, ratio ${(nsCatalog / nsBaseline).toFixed(2)}`,
    ],
    ['resolveTarget heap', Number.isNaN(bytes) ? 'run with --expose-gc' : `${bytes.toFixed(3)} bytes/op`, ''],
  ]
  console.log(
    `catalog benchmark — node ${process.version}, ${String(LOOKUPS)} lookups per run (sink ${String(sink % 7)})`,
  )
  for (const r of rows) console.log(`  ${(r[0] ?? '').padEnd(34)} ${(r[1] ?? '').padEnd(18)} ${r[2] ?? ''}`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
