/**
 * `npm run bench [-- <scenario>...] [--as before]`: runs the scenarios in bench/scenarios/ (all of them, or
 * those named), prints a table, and saves each scenario's record under bench/results/ with the machine it
 * ran on. A scenario is one file there whose default export is a Scenario (bench/lib/scenario.ts).
 */
import { readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { machine } from './lib/machine.ts'
import type { ScenarioRecord } from './lib/report.ts'
import { save, table, writeSummary } from './lib/report.ts'
import type { Scenario } from './lib/scenario.ts'
import { byOrder } from './lib/scenario.ts'

const SCENARIOS = fileURLToPath(new URL('./scenarios/', import.meta.url))
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url))

export async function loadScenarios(): Promise<Scenario[]> {
  const files = (await readdir(SCENARIOS)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  const scenarios = await Promise.all(
    files.map(
      async (f) => ((await import(new URL(f, `file://${SCENARIOS}`).href)) as { default: Scenario }).default,
    ),
  )
  return scenarios.sort((a, b) => byOrder(a.name, b.name))
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { as: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  const all = await loadScenarios()
  if (values.help === true) {
    console.log('npm run bench [-- <scenario>...] [--as before]\n')
    for (const s of all) console.log(`  ${s.name.padEnd(12)} ${s.summary}`)
    return 0
  }
  const unknown = positionals.filter((p) => !all.some((s) => s.name === p))
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(', ')}; scenarios: ${all.map((s) => s.name).join(', ')}`)
    return 2
  }
  if (values.as !== undefined && !/^[a-z0-9-]+$/.test(values.as)) {
    console.error('--as takes a plain name such as before')
    return 2
  }
  const chosen = positionals.length === 0 ? all : all.filter((s) => positionals.includes(s.name))
  const dir = values.as === undefined ? RESULTS : `${RESULTS}${values.as}/`
  const command = `npm run bench${positionals.length === 0 ? '' : ` -- ${positionals.join(' ')}`}`
  const records: ScenarioRecord[] = []
  for (const s of chosen) {
    const host = machine()
    console.error(`${s.name}: ${s.summary}`)
    const result = await s.run({ log: (line) => console.error(`  ${line}`) })
    const record: ScenarioRecord = {
      scenario: s.name,
      summary: s.summary,
      command,
      machine: host,
      measures: result.measures,
      notes: result.notes ?? [],
    }
    await save(dir, record)
    records.push(record)
  }
  await writeSummary(RESULTS)
  console.log(table(records))
  return 0
}

if (import.meta.main) process.exitCode = await main()
