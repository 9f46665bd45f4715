/** Runs the load generator (bench/lib/loadgen.ts) in a process of its own and returns what it measured. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LoadReport, LoadSpec } from './loadgen.ts'
import { cpuSeconds, pinServers } from './processes.ts'

export type { LoadReport, LoadSpec }

const LOADGEN = fileURLToPath(new URL('./loadgen.ts', import.meta.url))

/** Runs one load; with `cpus` (taskset syntax), the load generator runs only there (see Placement). */
export function runLoad(spec: LoadSpec, cpus?: string): Promise<LoadReport> {
  const node = [process.execPath, LOADGEN, JSON.stringify(spec)]
  const [command = '', ...args] = cpus === undefined ? node : ['taskset', '--cpu-list', cpus, ...node]
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`load generator failed: ${err.message}\n${stderr}`))
        return
      }
      const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as LoadReport
      if (report.requests === 0 || report.errors > 0 || report.non2xx > 0) {
        reject(
          new Error(
            `load on ${spec.url}: ${String(report.requests)} answered, ${String(report.errors)} errors, ${String(report.non2xx)} not 2xx`,
          ),
        )
        return
      }
      resolve(report)
    })
  })
}

/** One endpoint a scenario loads, named for its table rows. */
export interface LoadTarget {
  readonly label: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** The server process whose CPU per request is measured (the gateway; the upstream for direct). */
  readonly pid?: number
}

export interface RoundReport extends LoadReport {
  /** CPU microseconds the target's process spent per request; NaN without a pid or /proc. */
  readonly cpuPerRequest: number
}

export interface RoundOptions {
  readonly connections: number
  /** Measured seconds per load. */
  readonly seconds: number
  readonly rounds: number
  /**
   * A gate sample: servers warmed by earlier samples, ratios only. Every warm-up is short and runs inside the
   * measured load generator; no CPU is read.
   */
  readonly quick?: boolean
  /**
   * Server pids to pin to a CPU of their own for these rounds, the load generator to the others, and to
   * release after (bench/lib/processes.ts, pinServers, says why); the scheduler decides when absent.
   */
  readonly pinServers?: readonly number[]
  /**
   * Each round starts one target later than the one before, so that no target always runs right after the
   * same other one (whose garbage, page cache and CPU frequency it would inherit every time).
   */
  readonly rotate?: boolean
}

/**
 * Loads each target in turn, `rounds` times, so that a burst of machine noise lands on all of them alike.
 * Each load follows an unmeasured warm-up: a second in the first round, to let the JITs settle, then short.
 * With a pid, the warm-up runs on its own, so that the CPU counted is the measured requests' only.
 */
export async function loadRounds(
  targets: readonly LoadTarget[],
  options: RoundOptions,
): Promise<Map<string, RoundReport[]>> {
  const pinned = options.pinServers === undefined ? undefined : pinServers(options.pinServers)
  try {
    return await measureRounds(targets, options, pinned?.load)
  } finally {
    pinned?.release()
  }
}

async function measureRounds(
  targets: readonly LoadTarget[],
  options: RoundOptions,
  loadCpus: string | undefined,
): Promise<Map<string, RoundReport[]>> {
  const { connections, seconds, rounds, quick = false, rotate = false } = options
  const out = new Map<string, RoundReport[]>(targets.map((t) => [t.label, []]))
  for (let round = 0; round < rounds; round++) {
    const first = rotate ? round % targets.length : 0
    for (const t of [...targets.slice(first), ...targets.slice(0, first)]) {
      const spec = { mode: 'load', url: t.url, headers: t.headers, body: t.body, connections } as const
      const warmupSeconds = round === 0 && !quick ? 1 : 0.3
      const list = out.get(t.label)
      if (quick || t.pid === undefined) {
        list?.push({ ...(await runLoad({ ...spec, seconds, warmupSeconds }, loadCpus)), cpuPerRequest: NaN })
        continue
      }
      await runLoad({ ...spec, seconds: warmupSeconds }, loadCpus)
      const cpu0 = cpuSeconds(t.pid)
      const report = await runLoad({ ...spec, seconds }, loadCpus)
      const cpu = cpuSeconds(t.pid) - cpu0
      list?.push({ ...report, cpuPerRequest: (cpu * 1e6) / report.requests })
    }
  }
  return out
}
