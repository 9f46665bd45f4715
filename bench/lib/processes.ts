/**
 * The servers a scenario measures, each in a process of its own so that the load generator, the gateway and
 * the upstream do not share an event loop (as in production, where they do not share a machine either).
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

export interface ServerProcess {
  readonly name: string
  readonly pid: number
  /** What the process's ready line reported (its URL), or the URL the caller gave. */
  readonly url: string
  stop(): Promise<void>
}

export interface ServerOptions {
  /** Arguments to `node`: a script and its flags. */
  readonly args: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  /** Finds the URL in a line of the process's stdout; the process is ready at the first match. */
  readonly ready: (line: string) => string | undefined
  readonly timeoutMs?: number
}

/** Starts `node <args>` and resolves once its stdout says it is ready. */
export function startServer(name: string, options: ServerOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, options.args, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
  return new Promise<ServerProcess>((resolve, reject) => {
    let buffered = ''
    const fail = (why: string) => {
      void stop()
      reject(new Error(`${name} did not start: ${why}${stderr === '' ? '' : `\n${stderr}`}`))
    }
    const timer = setTimeout(() => fail('no ready line in time'), options.timeoutMs ?? 20_000)
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer)
      fail(`exited (${String(code ?? signal)})`)
    }
    child.once('exit', onEarlyExit)
    child.stdout.setEncoding('utf8')
    const onData = (chunk: string) => {
      buffered += chunk
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const url = options.ready(line)
        if (url === undefined) continue
        clearTimeout(timer)
        child.off('exit', onEarlyExit)
        // Keep draining stdout so that a chatty server never blocks on a full pipe.
        child.stdout.off('data', onData)
        child.stdout.resume()
        resolve({ name, pid: child.pid ?? -1, url, stop })
        return
      }
    }
    child.stdout.on('data', onData)
  })
}

/** Stops every server, also when one of them fails to stop. */
export async function stopAll(servers: readonly (ServerProcess | undefined)[]): Promise<void> {
  await Promise.allSettled(servers.map((s) => (s === undefined ? Promise.resolve() : s.stop())))
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc: Linux only, NaN elsewhere. What a
 * server spends per request is steadier than its throughput on a shared machine, where the scheduler
 * decides who gets the cores.
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces): state is 3rd, utime 14th, stime 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** USER_HZ, 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100

/**
 * Where a latency gate runs the two sides of its ratio: the load generator on the first CPUs, the servers on
 * the last. At one connection a request is a ping-pong between processes, and on a 2-vCPU VM its latency
 * depends mostly on whether they share a CPU (a wake-up on the same CPU is a context switch; across CPUs it
 * is an inter-processor interrupt to a vCPU the host may have parked). Measured here: ark 63 us and direct
 * 38 us on one CPU, 112 and 72 across two; left to the scheduler each side lands either way on its own, so a
 * ratio sample read anywhere from 0.9 to 3.3. Pinned, both sides pay the same crossing every time.
 * Throughput is measured unpinned (`release`), since it is meant to use every core.
 */
export interface Placement {
  /** CPU list (taskset syntax) for the load generator. */
  readonly load: string
  /** Lets the servers run on every CPU again. */
  release(): void
}

function taskset(cpus: string, pids: readonly number[]): void {
  for (const pid of pids) {
    execFileSync('taskset', ['--all-tasks', '--pid', '--cpu-list', cpus, String(pid)], { stdio: 'ignore' })
  }
}

/**
 * Pins the server processes (all their threads) to the last CPU and returns where the load generator goes,
 * or undefined where pinning is not possible (one CPU, or no taskset: not Linux) and the scheduler decides.
 */
export function pinServers(pids: readonly number[]): Placement | undefined {
  const cpus = availableParallelism()
  if (cpus < 2) return undefined
  try {
    taskset(String(cpus - 1), pids)
  } catch {
    return undefined
  }
  return {
    load: `0-${String(cpus - 2)}`,
    release: () => {
      try {
        taskset(`0-${String(cpus - 1)}`, pids)
      } catch {
        // A server that exited meanwhile: the sample's own error says so.
      }
    },
  }
}
