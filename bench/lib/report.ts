/**
 * Results: one JSON file per scenario under bench/results/ (bench/results/before/ for a run saved with
 * `--as before`), and bench/results/README.md, the markdown summary rebuilt from all of them.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Machine } from './machine.ts'
import type { Measure } from './scenario.ts'
import { byOrder, met } from './scenario.ts'

export interface ScenarioRecord {
  readonly scenario: string
  readonly summary: string
  readonly command: string
  readonly machine: Machine
  readonly measures: readonly Measure[]
  readonly notes: readonly string[]
}

export function formatValue(value: number, unit: string): string {
  if (Number.isNaN(value)) return 'n/a'
  const digits = unit === 'x' ? 2 : Math.abs(value) < 10 ? 2 : Math.abs(value) < 100 ? 1 : 0
  const text = value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  return unit === 'x' ? `${text}x` : `${text} ${unit}`
}

export function formatTarget(m: Measure): string {
  if (m.target === undefined) return ''
  const verdict =
    met(m) === true ? 'met' : `missed by ${formatValue(Math.abs(m.value - m.target.value), m.unit)}`
  return `${m.target.op} ${formatValue(m.target.value, m.unit)}: ${verdict}`
}

/** The table printed after a run. */
export function table(records: readonly ScenarioRecord[]): string {
  const rows = [['scenario', 'measure', 'value', 'target', 'compared with']]
  for (const r of records)
    for (const m of r.measures)
      rows.push([r.scenario, m.name, formatValue(m.value, m.unit), formatTarget(m), m.note ?? ''])
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? []
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

export async function save(dir: string, record: ScenarioRecord): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, `${record.scenario}.json`), `${JSON.stringify(record, null, 2)}\n`)
}

async function load(dir: string): Promise<ScenarioRecord[]> {
  let names: string[]
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()
  } catch {
    return []
  }
  return Promise.all(
    names.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8')) as ScenarioRecord),
  )
}

const cell = (text: string) => text.replaceAll('|', '\\|')

/** Rebuilds bench/results/README.md from the saved records (latest, and `before` where one was saved). */
export async function writeSummary(dir: string): Promise<void> {
  const latest = await load(dir)
  const before = new Map((await load(join(dir, 'before'))).map((r) => [r.scenario, r]))
  latest.sort((a, b) => byOrder(a.scenario, b.scenario))
  const lines = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (one scenario: `npm run bench -- <scenario>`); each scenario keeps its own',
    'JSON file here. `before/` holds runs saved with `--as before`, the figures before an optimisation.',
    '',
  ]
  for (const r of latest) {
    const b = before.get(r.scenario)
    const m = r.machine
    lines.push(`## ${r.scenario}`, '', r.summary, '')
    lines.push(
      `Measured ${m.date.slice(0, 10)} on ${m.cpu}, ${String(m.cores)} cores, ${String(m.memoryGiB)} GiB, ${m.os}; Node ${m.node}, Deno ${m.deno}; load average ${String(m.loadAverage)} at the start. Command: \`${r.command}\`.`,
      '',
    )
    const header =
      b === undefined
        ? '| measure | value | target | compared with |'
        : '| measure | before | after | target | compared with |'
    lines.push(header, header.replace(/[^|]+/g, ' --- '))
    for (const x of r.measures) {
      const old = b?.measures.find((y) => y.name === x.name)
      const cells = [x.name, formatValue(x.value, x.unit), formatTarget(x), x.note ?? '']
      if (b !== undefined) cells.splice(1, 0, old === undefined ? '' : formatValue(old.value, old.unit))
      lines.push(`| ${cells.map(cell).join(' | ')} |`)
    }
    if (r.notes.length > 0) lines.push('', ...r.notes.map((n) => `- ${n}`))
    lines.push('')
  }
  await writeFile(join(dir, 'README.md'), lines.join('\n'))
}
