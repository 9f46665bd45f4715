/**
 * catalog: how long 1,000 agents' manifests take to load (read, validate, adapt, index, reconcile
 * availability), and what a target lookup costs next to a bare Map.get of the same size (the baseline,
 * measured in the same run).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlPlane } from '../../controller/index.ts'
import { writeManyAgents } from '../lib/many-agents.ts'
import type { RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'

const AGENTS = 1000
const FILES = 10
const RUNS = 7
const LOOKUPS = 2_000_000

function heapPerOp(fn: () => void, ops: number): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return NaN
  gc()
  const before = process.memoryUsage().heapUsed
  fn()
  const after = process.memoryUsage().heapUsed
  return Math.max(0, (after - before) / ops)
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-catalog-'))
  try {
    context.log(`catalog: writing ${String(AGENTS)} agents in ${String(FILES)} files`)
    await writeManyAgents(dir, AGENTS, FILES)
    const loads: number[] = []
    let cp = await startControlPlane(dir, { watch: false })
    await cp.close()
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now()
      cp = await startControlPlane(dir, { watch: false })
      loads.push(performance.now() - t0)
      if (i < RUNS - 1) await cp.close()
    }
    const loaded = cp
    const agents = loaded.catalog.count('Agent')
    const available = loaded.catalog
      .list('Agent')
      .filter((a) =>
        loaded.store.status(a.key)?.conditions.some((c) => c.type === 'Available' && c.status === 'True'),
      ).length
    if (agents !== AGENTS || available !== AGENTS) {
      throw new Error(
        `catalog: ${String(agents)} agents loaded, ${String(available)} Available; expected ${String(AGENTS)}`,
      )
    }

    const names = Array.from({ length: AGENTS }, (_, i) => `agent/agent-${String(i)}`)
    const baseline = new Map(names.map((n) => [n, { n }]))
    let sink = 0
    const lookupCatalog = () => {
      for (let i = 0; i < LOOKUPS; i++)
        if (loaded.catalog.resolveTarget(names[i % AGENTS] ?? '') !== undefined) sink++
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
    await loaded.close()
    if (sink === 0) throw new Error('catalog: no lookup found its agent')
    return {
      measures: [
        {
          name: 'load 1,000 agents',
          value: median(loads),
          unit: 'ms',
          note: `${String(available)} Available`,
        },
        {
          name: 'resolveTarget',
          value: nsCatalog,
          unit: 'ns',
          note: `baseline Map.get ${nsBaseline.toFixed(1)} ns`,
        },
        { name: 'resolveTarget / Map.get', value: nsCatalog / nsBaseline, unit: 'x' },
        { name: 'resolveTarget heap per lookup', value: bytes, unit: 'bytes' },
      ],
      notes: [
        `Load: median of ${String(RUNS)} cold starts of the control plane over ${String(FILES)} files (half ARK Agents, half ArkAgents), Available reconciled.`,
        `Lookups: median of ${String(RUNS)} runs of ${LOOKUPS.toLocaleString('en-US')} resolveTarget calls against a Map.get over the same names.`,
      ],
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const scenario: Scenario = {
  name: 'catalog',
  summary: 'loading 1,000 agents from manifests, and resolving targets vs a bare Map.get',
  run,
}
export default scenario
