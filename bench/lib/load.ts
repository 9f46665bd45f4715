/** Runs the load generator (bench/lib/loadgen.ts) in a process of its own and returns what it measured. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LoadReport, LoadSpec } from './loadgen.ts'
import { cpuSeconds } from './processes.ts'

export type { LoadReport, LoadSpec }

const LOADGEN = fileURLToPath(new URL('./loadgen.ts', import.meta.url))

export function runLoad(spec: LoadSpec): Promise<LoadReport> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [LOADGEN, JSON.stringify(spec)],
      { maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
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
      },
    )
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

/**
 * Loads each target in turn, `rounds` times, so that a burst of machine noise lands on all of them alike.
 * Each load follows a short unmeasured one; the first round's lasts `firstWarmupSeconds`, to let the JITs
 * settle (a gate sample, on servers warmed by earlier samples, needs no more than the short one).
 */
export async function loadRounds(
  targets: readonly LoadTarget[],
  connections: number,
  seconds: number,
  rounds: number,
  firstWarmupSeconds = 1,
): Promise<Map<string, RoundReport[]>> {
  const out = new Map<string, RoundReport[]>(targets.map((t) => [t.label, []]))
  for (let round = 0; round < rounds; round++) {
    for (const t of targets) {
      const spec = { mode: 'load', url: t.url, headers: t.headers, body: t.body, connections } as const
      const warmupSeconds = round === 0 ? firstWarmupSeconds : 0.3
      if (t.pid === undefined) {
        // No CPU to count: warm up inside the same load generator, one process start fewer.
        out
          .get(t.label)
          ?.push({ ...(await runLoad({ ...spec, seconds, warmupSeconds })), cpuPerRequest: NaN })
        continue
      }
      // Warm up in a run of its own, so that the CPU counted below is the measured requests' only.
      await runLoad({ ...spec, seconds: warmupSeconds })
      const cpu0 = cpuSeconds(t.pid)
      const report = await runLoad({ ...spec, seconds })
      const cpu = cpuSeconds(t.pid) - cpu0
      out.get(t.label)?.push({ ...report, cpuPerRequest: (cpu * 1e6) / report.requests })
    }
  }
  return out
}
