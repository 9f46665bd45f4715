/**
 * deploy/prometheus (alerting rules and their unit tests) and deploy/grafana (a dashboard): the rules load in
 * promtool and fire as their tests say; every query of the dashboard parses as PromQL; and every metric and
 * label they name is one ark registers, so that a renamed metric cannot leave them quietly showing nothing.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { startControlPlane } from '../controller/index.ts'
import type { ControlPlane } from '../controller/index.ts'
import { ReconcileMetrics } from '../controller/reconcile/index.ts'
import { KeyRing, WorkerMetrics, createGateway } from '../gateway/index.ts'
import type { Gateway } from '../gateway/index.ts'

const run = promisify(execFile)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const RULES = join(root, 'deploy/prometheus/ark-alerts.yaml')
const RULE_TESTS = join(root, 'deploy/prometheus/ark-alerts.test.yaml')
const DASHBOARD = join(root, 'deploy/grafana/ark-dashboard.json')

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[]
}
interface RuleTests {
  tests: { input_series: { series: string }[] }[]
}
interface Panel {
  type: string
  title: string
  targets?: { expr: string }[]
}

/** promtool's result: exit code and what it printed (it reports failures on stdout). */
async function promtool(args: readonly string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { timeout: 60_000 })
    return { code: 0, out: stdout + stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** Grafana's variables, as a query with them filled in reaches Prometheus. */
const filled = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replaceAll('$agent', '.*')

/** Metric names a PromQL expression reads: ark's prefixes only (functions and labels never start so). */
function metricsIn(expr: string): string[] {
  // Matchers and grouping clauses first: label names and values may look like metric names.
  const outside = expr.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without)\s*\([^)]*\)/g, '$1 ()')
  return [...outside.matchAll(/\b((?:ark|gen_ai|http_server)_[a-z_]+)\b/g)].map((m) => m[1] ?? '')
}

/** Label names a PromQL expression matches on or aggregates by. */
function labelsIn(expr: string): string[] {
  const out: string[] = []
  for (const m of expr.matchAll(/\{([^}]*)\}/g))
    for (const l of (m[1] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) out.push(l[1] ?? '')
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g))
    for (const l of (m[1] ?? '').split(',')) if (l.trim() !== '') out.push(l.trim())
  return out
}

describe('Prometheus rules and the Grafana dashboard in deploy/', () => {
  let rules: RuleFile
  let dashboard: { panels: Panel[]; templating: { list: { name: string; definition?: string }[] } }
  const exprs: { where: string; expr: string }[] = []
  /** Every metric ark registers (gateway and pools, sandbox, keys; workers; controller): name to labels. */
  const registered = new Map<string, { type: string; labels: Set<string> }>()
  let cp: ControlPlane
  let gateway: Gateway

  beforeAll(async () => {
    rules = parse(await readFile(RULES, 'utf8')) as RuleFile
    dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as typeof dashboard
    for (const g of rules.groups)
      for (const r of g.rules) exprs.push({ where: `alert ${r.alert ?? ''}`, expr: r.expr })
    for (const p of dashboard.panels)
      for (const t of p.targets ?? []) exprs.push({ where: `panel ${p.title}`, expr: filled(t.expr) })
    for (const v of dashboard.templating.list)
      if (v.definition !== undefined) exprs.push({ where: `variable ${v.name}`, expr: v.definition })

    // The examples hold an agent with an MCP server, so that the MCP client's metrics are registered too.
    cp = await startControlPlane(join(root, 'examples'), { watch: false })
    const keys = new KeyRing()
    keys.replace([{ id: 'ci', sha256: '0'.repeat(64) }])
    gateway = createGateway({ catalog: cp.catalog, auth: { keys } })
    const side = new Registry()
    new WorkerMetrics(side)
    new ReconcileMetrics(side)
    for (const registry of [gateway.metrics.registry, side])
      for (const m of registry.getMetricsAsArray()) {
        const metric = m as unknown as { name: string; type: string; labelNames?: readonly string[] }
        registered.set(metric.name, { type: metric.type, labels: new Set(metric.labelNames ?? []) })
      }
  }, 60_000)

  afterAll(async () => {
    await gateway.close()
    await cp.close()
  })

  it('the alerting rules load in promtool and pass their own unit tests', async () => {
    const checked = await promtool(['check', 'rules', RULES])
    expect(checked.out).toContain('SUCCESS: 11 rules found')
    expect(checked.code).toBe(0)
    const tested = await promtool(['test', 'rules', RULE_TESTS])
    expect(tested.out).toContain('SUCCESS')
    expect(tested.code).toBe(0)
    // Every alert has a test that expects it to fire.
    const testText = await readFile(RULE_TESTS, 'utf8')
    for (const g of rules.groups)
      for (const r of g.rules) expect(testText).toContain(`alertname: ${r.alert ?? ''}\n`)
  })

  it('every query of the dashboard is PromQL that Prometheus parses', async () => {
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => filled(t.expr)))
    expect(queries.length).toBeGreaterThan(15)
    const dir = await mkdtemp(join(tmpdir(), 'ark-dashboard-'))
    try {
      // promtool parses expressions only inside rule files: each query becomes a recording rule.
      const file = join(dir, 'queries.yaml')
      await writeFile(
        file,
        JSON.stringify({
          groups: [
            {
              name: 'dashboard',
              rules: queries.map((expr, i) => ({ record: `ark:query${String(i)}`, expr })),
            },
          ],
        }),
      )
      const checked = await promtool(['check', 'rules', file])
      expect(checked.out).toContain(`SUCCESS: ${String(queries.length)} rules found`)
      expect(checked.code).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    // And a broken one would have been caught.
    const broken = join(await mkdtemp(join(tmpdir(), 'ark-dashboard-')), 'broken.yaml')
    await writeFile(
      broken,
      JSON.stringify({
        groups: [{ name: 'x', rules: [{ record: 'ark:x', expr: 'sum by (pool (ark_pool_queue_depth)' }] }],
      }),
    )
    expect((await promtool(['check', 'rules', broken])).code).not.toBe(0)
    await rm(dirname(broken), { recursive: true, force: true })
  })

  it('names only metrics ark registers, with the labels they have', () => {
    expect(registered.size).toBeGreaterThan(20)
    const unknown: string[] = []
    for (const { where, expr } of exprs) {
      const names = metricsIn(expr)
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0)
      const labels = new Set<string>()
      for (const name of names) {
        const base = name.replace(/_(bucket|count|sum)$/, '')
        const m =
          registered.get(name) ??
          (registered.get(base)?.type === 'histogram' ? registered.get(base) : undefined)
        if (m === undefined) unknown.push(`${where}: metric ${name}`)
        else for (const l of m.labels) labels.add(l)
      }
      for (const label of labelsIn(expr))
        if (label !== 'le' && !labels.has(label)) unknown.push(`${where}: label ${label}`)
    }
    expect(unknown).toEqual([])
  })

  it('the rules’ unit tests feed series shaped as ark’s own', async () => {
    const tests = parse(await readFile(RULE_TESTS, 'utf8')) as RuleTests
    const wrong: string[] = []
    for (const t of tests.tests)
      for (const { series } of t.input_series) {
        const m = /^([a-z_:]+)\{(.*)\}$/.exec(series)
        const name = m?.[1] ?? ''
        const base = name.replace(/_(bucket|count|sum)$/, '')
        const metric = registered.get(name) ?? registered.get(base)
        if (metric === undefined) {
          wrong.push(`${series}: no such metric`)
          continue
        }
        const labels = [...(m?.[2] ?? '').matchAll(/([a-z_]+)="/g)]
          .map((l) => l[1] ?? '')
          .filter((l) => l !== 'le')
        if (labels.sort().join(',') !== [...metric.labels].sort().join(','))
          wrong.push(`${series}: labels ${labels.join(',')} where ark has ${[...metric.labels].join(',')}`)
      }
    expect(wrong).toEqual([])
  })
})
