/**
 * What a scenario is. Adding one is one file in bench/scenarios/ whose default export is a Scenario; the
 * runner (bench/run.ts) finds it by file name, and the gate (bench/gate.ts) uses its `sample` if it has one.
 */

export interface Target {
  readonly op: '<=' | '>='
  readonly value: number
}

export interface Measure {
  /** Unique within the scenario, e.g. `ark added p99 @1`. */
  readonly name: string
  readonly value: number
  readonly unit: string
  /** The target, when it set one; the report says met or missed, and by how much. */
  readonly target?: Target
  /** What the figure is compared with, e.g. `direct 812 us`. */
  readonly note?: string
}

export interface ScenarioResult {
  readonly measures: readonly Measure[]
  /** Context a reader needs: what was measured against what, and why a target was missed. */
  readonly notes?: readonly string[]
}

export interface RunContext {
  /** Progress lines, to stderr: the table goes to stdout. */
  readonly log: (line: string) => void
}

export interface Scenario {
  readonly name: string
  /** One line: what is measured, and against which baseline. */
  readonly summary: string
  run(context: RunContext): Promise<ScenarioResult>
  /**
   * The gate's quick form (bench/gate.ts): sets up once, then each `sample()` is one short repetition that
   * returns named ratios to a baseline measured in that same repetition. The gate takes the median of several
   * and compares it with bench/gate-thresholds.ts.
   */
  gate?(context: RunContext): Promise<GateSession>
}

export interface GateSession {
  sample(): Promise<Readonly<Record<string, number>>>
  close(): Promise<void>
}

/** The order of tables: the hot path first, then outward. Scenarios not listed come after, by name. */
export const ORDER = [
  'toolloop',
  'catalog',
  'agent',
  'passthrough',
  'sandbox',
  'mcp',
  'a2a',
  'redis',
  'controller',
]

/** Sorts scenario names by ORDER. */
export function byOrder(a: string, b: string): number {
  const rank = (s: string) => (ORDER.includes(s) ? ORDER.indexOf(s) : ORDER.length)
  return rank(a) - rank(b) || a.localeCompare(b)
}

export function met(measure: Measure): boolean | undefined {
  const t = measure.target
  if (t === undefined || Number.isNaN(measure.value)) return undefined
  return t.op === '<=' ? measure.value <= t.value : measure.value >= t.value
}
