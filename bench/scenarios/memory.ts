/**
 * memory: what ark's processes hold, as a container's memory limit sees them (VmRSS), against the floor of a
 * bare Node process of the same binary measured in the same run. Issue 23's targets: `ark gateway` at most
 * 100 MiB with 1,000 agents loaded, `ark worker` at most 80 MiB idle.
 *
 * ark runs as containers run it: the compiled build (build.ts, made for the run), on Redis pools (a real
 * redis-server). Each figure is read once the process says it is ready and has been quiet for a few seconds,
 * the median of RUNS starts. Beside the defaults, the same processes under `--max-semi-space-size=2`: V8's
 * young generation (up to 3 x 16 MiB by default) is most of what a quiet process holds beyond its live heap,
 * and a smaller one is the lever the note weighs (it costs peak throughput: about 10% at 50 connections on the
 * mock agent, measured by hand on 2026-12-08).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis } from '../../test/redis-server.ts'
import { buildArk } from '../lib/kube-bench.ts'
import { writeManyAgents } from '../lib/many-agents.ts'
import { startServer } from '../lib/processes.ts'
import type { ServerProcess } from '../lib/processes.ts'
import { statusBytes } from '../lib/procstat.ts'
import type { Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'

const AGENTS = 1000
const RUNS = Number(process.env.ARK_BENCH_RUNS ?? 3)
/** How long a started process is left alone before it is read: its start-up garbage collected. */
const SETTLE_MS = 4000
const MiB = 2 ** 20

/** The resident memory of a process that `start` makes, once it is ready and settled; it is then stopped. */
async function settledRss(start: () => Promise<ServerProcess>): Promise<number> {
  const p = await start()
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS))
    return statusBytes(p.pid, 'VmRSS')
  } finally {
    await p.stop()
  }
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-memory-'))
  const redis = await startRedis()
  try {
    context.log('memory: building ark (build.ts), as a container runs it')
    const entry = buildArk(dir)
    const manifests = join(dir, 'manifests')
    await mkdir(manifests)
    // Files of 5 agents: each under the 8 KiB that are parsed inline (larger ones go to a parse thread).
    await writeManyAgents(manifests, AGENTS, AGENTS / 5)
    const env = { REDIS_URL: redis.url, ARK_LOG_LEVEL: 'info' }
    const gateway = (flags: readonly string[]) => () =>
      startServer('gateway', {
        args: [...flags, entry, 'gateway', '-f', manifests, '--port', '0', '--probe-interval', '0'],
        env,
        ready: (line) => (line.includes('"serving"') ? 'ready' : undefined),
        timeoutMs: 60_000,
      })
    const worker = (flags: readonly string[]) => () =>
      startServer('worker', {
        args: [...flags, entry, 'worker', '--agent', 'default/agent-1', '-f', manifests, '--port', '0'],
        env,
        ready: (line) => (line.includes('taking tasks') ? 'ready' : undefined),
        timeoutMs: 60_000,
      })
    const bare = () =>
      startServer('bare node', {
        args: ['-e', "console.log('ready'); setInterval(() => {}, 1 << 30)"],
        ready: (line) => (line === 'ready' ? 'ready' : undefined),
      })
    const semi = ['--max-semi-space-size=2']
    const samples: Record<string, number[]> = {}
    const take = async (name: string, start: () => Promise<ServerProcess>) => {
      const rss = await settledRss(start)
      ;(samples[name] ??= []).push(rss / MiB)
      context.log(`memory: ${name} ${(rss / MiB).toFixed(0)} MiB`)
    }
    for (let i = 0; i < RUNS; i++) {
      await take('bare node', bare)
      await take('gateway', gateway([]))
      await take('gateway semi', gateway(semi))
      await take('worker', worker([]))
      await take('worker semi', worker(semi))
    }
    const med = (name: string) => median(samples[name] ?? [])
    const floor = med('bare node')
    const measures: Measure[] = [
      {
        name: 'bare node (floor)',
        value: floor,
        unit: 'MiB',
        note: 'node -e with a timer: the binary and V8 alone',
      },
      {
        name: `gateway RSS, ${String(AGENTS)} agents`,
        value: med('gateway'),
        unit: 'MiB',
        target: { op: '<=', value: 100 },
        note: `${(med('gateway') / floor).toFixed(2)}x the floor; ark gateway on Redis pools, compiled build`,
      },
      {
        name: `gateway RSS, ${String(AGENTS)} agents, semi-space 2 MiB`,
        value: med('gateway semi'),
        unit: 'MiB',
        note: `${(med('gateway semi') / floor).toFixed(2)}x the floor; node --max-semi-space-size=2`,
      },
      {
        name: 'worker RSS idle',
        value: med('worker'),
        unit: 'MiB',
        target: { op: '<=', value: 80 },
        note: `${(med('worker') / floor).toFixed(2)}x the floor; ark worker --agent default/agent-1 over the same folder`,
      },
      {
        name: 'worker RSS idle, semi-space 2 MiB',
        value: med('worker semi'),
        unit: 'MiB',
        note: `${(med('worker semi') / floor).toFixed(2)}x the floor`,
      },
    ]
    return {
      measures,
      notes: [
        `VmRSS ${String(SETTLE_MS / 1000)} s after each process said it was ready (gateway: serving; worker: taking tasks), median of ${String(RUNS)} starts (ARK_BENCH_RUNS). ${String(AGENTS)} agents in files of 5, half ARK Agents, half ArkAgents, on the mock model; a real redis-server.`,
        'Where the memory goes (2026-12-08, heap snapshots of the gateway with 0 and 1,000 agents): the live JS heap grows by about 4 MiB for 1,000 agents; the rest of the growth is V8 heap space kept after loading them. The floor of the gateway itself is mostly its modules: hono, prom-client, typebox, yaml and @a2a-js/sdk (with jose) about 45 MiB over bare node, ioredis about 10. The MCP SDK (with zod) loads with the first MCP session or connection (2026-12-08, two runs: 184 to 143 and 148 MiB for the gateway, 185 to 146 and 153 for the worker).',
      ],
    }
  } finally {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

const scenario: Scenario = {
  name: 'memory',
  summary: `RSS of ark gateway (${String(AGENTS)} agents) and an idle ark worker, compiled build on Redis, against a bare Node process`,
  run,
}
export default scenario
