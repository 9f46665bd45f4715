/**
 * `npm run bench:gate [-- <scenario>...]`: the quick form of the scenarios that have one (toolloop, agent,
 * passthrough, sandbox, mcp, a2a, team, redis, redact), for CI. Each sample is a short repetition that measures ark and its baseline side by side
 * and returns their ratios; the gate takes the median of SAMPLES repetitions and fails (exit 1) when one
 * crosses its threshold in bench/gate-thresholds.ts. Ratios to a baseline of the same run, and medians,
 * so that a slower or busier machine moves both sides and does not flip the verdict.
 */
import { parseArgs } from 'node:util'
import type { Threshold } from './gate-thresholds.ts'
import { THRESHOLDS } from './gate-thresholds.ts'
import { machine } from './lib/machine.ts'
import { median } from './lib/stats.ts'
import { loadScenarios } from './run.ts'

const SAMPLES = 5

interface Verdict {
  readonly threshold: Threshold
  readonly median: number
  readonly samples: readonly number[]
  readonly pass: boolean
}

function judge(threshold: Threshold, samples: readonly number[]): Verdict {
  const m = median(samples)
  const pass =
    !Number.isNaN(m) &&
    (threshold.max === undefined || m <= threshold.max) &&
    (threshold.min === undefined || m >= threshold.min)
  return { threshold, median: m, samples, pass }
}

async function main(): Promise<number> {
  const { positionals } = parseArgs({ allowPositionals: true })
  const scenarios = (await loadScenarios()).filter((s) => s.gate !== undefined)
  const unknown = positionals.filter((p) => !scenarios.some((s) => s.name === p))
  if (unknown.length > 0) {
    console.error(
      `no gate for ${unknown.join(', ')}; gated scenarios: ${scenarios.map((s) => s.name).join(', ')}`,
    )
    return 2
  }
  const chosen = positionals.length === 0 ? scenarios : scenarios.filter((s) => positionals.includes(s.name))
  const host = machine()
  console.log(
    `bench gate on ${host.cpu}, ${String(host.cores)} cores, Node ${host.node}, load ${String(host.loadAverage)}`,
  )
  const verdicts: Verdict[] = []
  for (const scenario of chosen) {
    const thresholds = THRESHOLDS.filter((t) => t.scenario === scenario.name)
    const session = await scenario.gate?.({ log: (line) => console.error(`  ${line}`) })
    if (session === undefined) continue
    const samples = new Map<string, number[]>(thresholds.map((t) => [t.ratio, []]))
    try {
      // One sample not counted: the first after setup reads the JIT still warming (agent p50 3.2 to 3.5 where
      // the rest read 1.7 to 2.0), and on a busy machine two such readings can move the median of five.
      await session.sample()
      for (let i = 0; i < SAMPLES; i++) {
        const ratios = await session.sample()
        for (const [name, list] of samples) list.push(ratios[name] ?? NaN)
      }
    } finally {
      await session.close()
    }
    for (const t of thresholds) verdicts.push(judge(t, samples.get(t.ratio) ?? []))
  }
  for (const v of verdicts) {
    const limit =
      v.threshold.max === undefined ? `>= ${String(v.threshold.min)}` : `<= ${String(v.threshold.max)}`
    const all = v.samples.map((x) => x.toFixed(2)).join(' ')
    console.log(
      `${v.pass ? 'ok  ' : 'FAIL'} ${v.threshold.scenario.padEnd(12)} ${v.threshold.ratio.padEnd(30)} median ${v.median.toFixed(2).padStart(7)}  (${limit})  samples ${all}`,
    )
  }
  const failed = verdicts.filter((v) => !v.pass)
  if (failed.length > 0) {
    console.log(
      `\n${String(failed.length)} gate(s) failed. Why each threshold has its value: bench/gate-thresholds.ts.`,
    )
    return 1
  }
  return 0
}

process.exitCode = await main()
