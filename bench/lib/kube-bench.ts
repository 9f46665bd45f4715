/**
 * What the controller scenario needs around a real kube-apiserver (test/kube.ts): `ark controller` in a child
 * process of its own, and the API server's own count of the requests it served (apiserver_request_total), so
 * that a run can say how many calls of each kind one Query cost.
 */
import { execFileSync, spawn } from 'node:child_process'
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KubeServer } from '../../test/kube.ts'

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))

export interface ControllerProcess {
  readonly pid: number
  /** http://127.0.0.1:PORT (its /readyz and /metrics). */
  readonly url: string
  /** Log lines by `msg`, with how many times each was written (warnings and errors tell what went wrong). */
  readonly messages: Map<string, number>
  /** The exit, if it came before stop(): a crash (or an out-of-memory kill) mid-run. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly stderr: () => string
  signal(signal: NodeJS.Signals): void
  /** SIGTERM (the controller shuts down cleanly, which writes a --cpu-prof profile), SIGKILL after 20 s. */
  stop(): Promise<void>
  /** With `memoryLimitMiB`: the cgroup's peak usage and its OOM kills so far; undefined without one. */
  memory(): { readonly peakMiB: number; readonly oomKills: number } | undefined
}

export interface ControllerOptions {
  readonly kubeconfig: string
  /** Flags for node itself, before the script: `--cpu-prof`, `--max-old-space-size=...`. */
  readonly nodeFlags?: readonly string[]
  /** The ark entry point (default bin/ark.ts; buildArk's bin/ark.js, which skips type stripping). */
  readonly entry?: string
  /** More `ark controller` flags: `--max-concurrent-queries 256`. */
  readonly args?: readonly string[]
  readonly timeoutMs?: number
  /**
   * Runs the controller in a memory cgroup of this many MiB, as a container limit would (the kernel
   * OOM-kills it past that; Node sizes its heap from it). Needs root and cgroup v1's memory controller.
   */
  readonly memoryLimitMiB?: number
}

const CGROUP_MEMORY = '/sys/fs/cgroup/memory'

/** Whether this process may make memory cgroups (cgroup v1's memory controller, writable: root). */
export function memoryCgroupsAvailable(): boolean {
  try {
    accessSync(`${CGROUP_MEMORY}/memory.limit_in_bytes`, constants.R_OK)
    accessSync(CGROUP_MEMORY, constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * ark as a container runs it: `npm run build`'s compiled JavaScript (build.ts), into `<dir>/ark`, with the
 * project's node_modules linked beside it. Returns the entry point, `<dir>/ark/bin/ark.js`.
 */
export function buildArk(dir: string): string {
  const out = join(dir, 'ark')
  execFileSync(process.execPath, [root('build.ts'), '--out-dir', out], { stdio: 'ignore' })
  symlinkSync(root('node_modules'), join(out, 'node_modules'), 'dir')
  return join(out, 'bin', 'ark.js')
}

/** A cgroup v1 memory group for one process, as a container runtime makes one. */
class MemoryCgroup {
  readonly dir: string
  constructor(limitMiB: number) {
    const base = CGROUP_MEMORY
    if (!existsSync(`${base}/memory.limit_in_bytes`))
      throw new Error(`a memory limit needs cgroup v1's memory controller at ${base} (and root)`)
    this.dir = `${base}/ark-bench-${String(process.pid)}-${String(Date.now())}`
    mkdirSync(this.dir)
    writeFileSync(`${this.dir}/memory.limit_in_bytes`, String(limitMiB * 2 ** 20))
  }
  /** A shell line that moves itself into the group and then becomes the command. */
  wrap(command: string, args: readonly string[]): [string, string[]] {
    return ['sh', ['-c', `echo $$ > ${this.dir}/cgroup.procs && exec "$0" "$@"`, command, ...args]]
  }
  usage(): { peakMiB: number; oomKills: number } {
    const peak = Number(readFileSync(`${this.dir}/memory.max_usage_in_bytes`, 'utf8'))
    const oom = /oom_kill (\d+)/.exec(readFileSync(`${this.dir}/memory.oom_control`, 'utf8'))?.[1]
    return { peakMiB: peak / 2 ** 20, oomKills: Number(oom ?? 0) }
  }
  remove(): void {
    try {
      rmdirSync(this.dir)
    } catch {
      // Still holding a process (it is being killed); the kernel frees the group with its last task.
    }
  }
}

/**
 * `node bin/ark.ts controller --kubeconfig <file> --port 0 --probe-interval 0` (the real binary: the pid is the
 * controller's own, for /proc), resolved once /readyz says it is synced and leading.
 */
export async function startController(options: ControllerOptions): Promise<ControllerProcess> {
  // Keyless models answer with the mock whatever the machine has set; the bench Models are mock anyway.
  const keys = new Set(['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'AZURE_OPENAI_API_KEY', 'OPENAI_BASE_URL'])
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !keys.has(k))),
    ARK_LOG_LEVEL: 'info',
    NO_COLOR: '1',
  }
  const args = [
    ...(options.nodeFlags ?? []),
    options.entry ?? root('bin/ark.ts'),
    'controller',
    '--kubeconfig',
    options.kubeconfig,
    '--port',
    '0',
    '--probe-interval',
    '0',
    ...(options.args ?? []),
  ]
  const cgroup = options.memoryLimitMiB === undefined ? undefined : new MemoryCgroup(options.memoryLimitMiB)
  const [command, argv] = cgroup?.wrap(process.execPath, args) ?? [process.execPath, args]
  const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const messages = new Map<string, number>()
  let stderr = ''
  let url: string | undefined
  let buffered = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8000)))
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      let msg = line.slice(0, 80)
      try {
        const parsed = JSON.parse(line) as { msg?: unknown; metrics?: unknown }
        if (typeof parsed.msg === 'string') msg = parsed.msg
        if (msg === 'serving' && typeof parsed.metrics === 'string')
          url = parsed.metrics.replace(/\/metrics$/, '')
      } catch {
        // Not a JSON line: counted by its beginning.
      }
      messages.set(msg, (messages.get(msg) ?? 0) + 1)
    }
  })
  const state: { ended: boolean; memory?: { peakMiB: number; oomKills: number } } = { ended: false }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      state.ended = true
      try {
        state.memory = cgroup?.usage()
      } catch {
        // The group is unreadable (removed under us): no figures, and no crash in an exit handler.
      }
      cgroup?.remove()
      resolve({ code, signal })
    }),
  )
  const stop = async () => {
    if (state.ended) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  for (;;) {
    if (state.ended) throw new Error(`ark controller exited before it was ready\n${stderr}`)
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`ark controller was not synced and leading in time\n${stderr}`)
    }
    if (url !== undefined) {
      const ready = await fetch(`${url}/readyz`)
        .then(async (r) => (r.ok ? await r.text() : ''))
        .catch(() => '')
      if (ready.includes('leading') && (messages.get('leading') ?? 0) > 0) break
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    pid: child.pid ?? -1,
    url,
    messages,
    exited,
    stderr: () => stderr,
    signal: (signal) => child.kill(signal),
    stop,
    memory: () => (state.ended ? state.memory : cgroup?.usage()),
  }
}

/** GET of a non-JSON path of the API server (its /metrics), with the admin token of test/kube.ts. */
export function apiText(kube: KubeServer, path: string): Promise<string> {
  const ca = readFileSync(`${kube.dir}/pki/ca.crt`)
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, kube.server),
      { ca, headers: { authorization: `Bearer ${kube.token}` } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          if ((res.statusCode ?? 0) >= 300) reject(new Error(`GET ${path}: ${String(res.statusCode)}`))
          else resolve(text)
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
}

export interface ApiRequests {
  /** apiserver_request_total by `VERB resource[/subresource] code`. */
  readonly counts: Map<string, number>
  /** apiserver_request_duration_seconds by `VERB resource[/subresource]`: sum of seconds, and count. */
  readonly seconds: Map<string, number>
  readonly timed: Map<string, number>
}

/**
 * What the API server says it served: every request (long ones, WATCH, counted when they end) and the time
 * each kind took from its point of view (queueing in the server and etcd included).
 */
export async function apiRequests(kube: KubeServer): Promise<ApiRequests> {
  const text = await apiText(kube, '/metrics')
  const out: ApiRequests = { counts: new Map(), seconds: new Map(), timed: new Map() }
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v)
  for (const line of text.split('\n')) {
    const metric =
      /^(apiserver_request_total|apiserver_request_duration_seconds_sum|apiserver_request_duration_seconds_count)\{/.exec(
        line,
      )?.[1]
    if (metric === undefined) continue
    const labels = new Map<string, string>()
    for (const m of line.matchAll(/(\w+)="([^"]*)"/g)) labels.set(m[1] ?? '', m[2] ?? '')
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    const sub = labels.get('subresource') ?? ''
    const what = `${labels.get('verb') ?? '?'} ${labels.get('resource') ?? '?'}${sub === '' ? '' : `/${sub}`}`
    if (metric === 'apiserver_request_total') add(out.counts, `${what} ${labels.get('code') ?? '?'}`, value)
    else if (metric.endsWith('_sum')) add(out.seconds, what, value)
    else add(out.timed, what, value)
  }
  return out
}

/** after - before, keys that moved only. */
export function countsSince(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Map<string, number> {
  const out = new Map<string, number>()
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0)
    if (d > 0) out.set(k, d)
  }
  return out
}

/** Sums of a Prometheus text exposition's samples by metric name and labels, e.g. `ark_x{a="b"}`. */
export function promSamples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}
