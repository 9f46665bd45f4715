/**
 * The real `ark` CLI in a child process (`node bin/ark.ts <command>`, a compiled build's bin/ark.js, or on Deno), for tests that kill, signal and
 * restart processes: it waits for a log line, keeps every line the process wrote, and reports how it exited.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'

export interface LogLine {
  readonly msg?: string
  readonly [field: string]: unknown
}

export interface ArkProcess {
  readonly pid: number
  /** The URL from the process's `serving` line (the API of a gateway; health and metrics of a worker). */
  readonly url: string
  readonly lines: LogLine[]
  /** What the process wrote to stderr (its last 4,000 characters). */
  stderr(): string
  /** How the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  signal(signal: NodeJS.Signals): void
  /** The first line (already written or still to come) that matches; rejects after `timeoutMs`. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>
  /** SIGTERM, then SIGKILL after 5 s; resolves when it exited. */
  stop(): Promise<void>
}

export async function startArk(
  args: readonly string[],
  options: {
    env?: Record<string, string | undefined>
    ready?: string
    /** The runtime to run the CLI on (default node, this process's own binary). */
    runtime?: 'node' | 'deno'
    /** The CLI's entry point (default bin/ark.ts; a compiled build's bin/ark.js), with node flags before it. */
    entry?: string
    nodeFlags?: readonly string[]
  } = {},
): Promise<ArkProcess> {
  // Keyless models answer with the mock, whatever the machine running the tests has set.
  const keys = new Set(['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'AZURE_OPENAI_API_KEY', 'OPENAI_BASE_URL'])
  const inherited = Object.entries(process.env).filter(([k]) => !keys.has(k))
  const env = {
    ...Object.fromEntries(inherited),
    ARK_LOG_LEVEL: 'info',
    DENO_NO_UPDATE_CHECK: '1',
    NO_COLOR: '1',
    ...options.env,
  }
  const [command, ...prefix] =
    options.runtime === 'deno'
      ? ['node_modules/.bin/deno', 'run', '-A', '--unstable-no-legacy-abort', 'bin/ark.ts']
      : [process.execPath, ...(options.nodeFlags ?? []), options.entry ?? 'bin/ark.ts']
  const child: ChildProcess = spawn(command, [...prefix, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: LogLine[] = []
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>()
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
  let buffered = ''
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      let line: LogLine
      try {
        line = JSON.parse(text) as LogLine
      } catch {
        line = { msg: text }
      }
      lines.push(line)
      for (const w of waiters)
        if (w.match(line)) {
          waiters.delete(w)
          w.resolve(line)
        }
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const waitFor = (match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> => {
    const found = lines.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(
          new Error(
            `ark ${args.join(' ')}: no matching log line within ${String(timeoutMs)} ms\n${lines
              .map((l) => JSON.stringify(l))
              .join('\n')}\n${stderr}`,
          ),
        )
      }, timeoutMs)
      waiters.add({
        match,
        resolve: (l) => {
          clearTimeout(timer)
          resolve(l)
        },
      })
    })
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  try {
    const serving = await Promise.race([
      waitFor((l) => l.msg === 'serving'),
      exited.then(({ code, signal }) => {
        throw new Error(`ark ${args.join(' ')} exited (${String(code ?? signal)}) before serving\n${stderr}`)
      }),
    ])
    if (options.ready !== undefined) await waitFor((l) => l.msg === options.ready)
    const where = serving.url ?? serving.health
    const url = (typeof where === 'string' ? where : '').replace(/\/readyz$/, '')
    return {
      pid: child.pid ?? -1,
      url,
      lines,
      stderr: () => stderr,
      exited,
      signal: (s) => child.kill(s),
      waitFor,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
