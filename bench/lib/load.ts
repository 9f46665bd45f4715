/** Runs the load generator (bench/lib/loadgen.ts) in a process of its own and returns what it measured. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LoadReport, LoadSpec } from './loadgen.ts'

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
