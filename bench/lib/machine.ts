/** What a result was measured on: the figures only mean something next to the machine that produced them. */
import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release, totalmem, type } from 'node:os'

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly deno: string
  /** One-minute load average when the run started: a busy machine explains a slow run. */
  readonly loadAverage: number
  readonly date: string
}

export function machine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    node: process.version,
    deno: denoVersion(),
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    date: new Date().toISOString(),
  }
}

/** The Deno the project pins (the `deno` devDependency), read without starting it. */
function denoVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../node_modules/deno/package.json', import.meta.url), 'utf8'),
    ) as {
      version?: string
    }
    return pkg.version === undefined ? 'unknown' : `v${pkg.version}`
  } catch {
    return 'not installed'
  }
}
