/**
 * auth: what API keys cost the agent path. Two `ark dev` over the same manifests, one open and one with
 * `--api-keys` (every request carries a valid bearer key), the same agent request on the in-process mock,
 * interleaved in the same run. Issue 21's target: authentication costs at most 5% of the agent path's
 * throughput, read here as CPU per request at 50 connections (throughput itself swings with what else
 * the 2 cores run) and checked against throughput too. Not in the CI gate (`npm run bench -- auth`): the
 * gate's time is spent on the hot paths, and this ratio needs long runs to settle.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newKey } from '../../gateway/index.ts'
import type { RoundReport } from '../lib/load.ts'
import { loadRounds } from '../lib/load.ts'
import type { RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import { CHAT_MESSAGES, JSON_HEADERS, expectCompletion, startArk, stopAll } from '../lib/stack.ts'

async function start() {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-keys-'))
  const { key, sha256 } = newKey()
  await writeFile(join(dir, 'keys.yaml'), `keys:\n  - id: bench\n    sha256: ${sha256}\n`)
  const open = await startArk('http://127.0.0.1:9')
  const keyed = await startArk('http://127.0.0.1:9', { ARK_API_KEYS: join(dir, 'keys.yaml') }).catch(
    async (err: unknown) => {
      await stopAll([open])
      throw err
    },
  )
  const close = async () => {
    await stopAll([open, keyed])
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const body = JSON.stringify({ model: 'agent/mock-agent', messages: CHAT_MESSAGES })
    const withKey = { ...JSON_HEADERS, authorization: `Bearer ${key}` }
    await expectCompletion(open.completions, JSON_HEADERS, body)
    await expectCompletion(keyed.completions, withKey, body)
    const targets = [
      { label: 'open', url: open.completions, headers: JSON_HEADERS, body, pid: open.pid },
      { label: 'keys', url: keyed.completions, headers: withKey, body, pid: keyed.pid },
    ]
    return { targets, pids: [open.pid, keyed.pid], close }
  } catch (err) {
    await close()
    throw err
  }
}

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))
const ratio = (m: Map<string, RoundReport[]>, pick: (r: RoundReport) => number) =>
  med(m, 'keys', pick) / med(m, 'open', pick)

async function run(context: RunContext): Promise<ScenarioResult> {
  const stack = await start()
  try {
    context.log('auth: 1 connection')
    const one = await loadRounds(stack.targets, {
      connections: 1,
      seconds: 2,
      rounds: 5,
      pinServers: stack.pids,
    })
    context.log('auth: 50 connections')
    const fifty = await loadRounds(stack.targets, { connections: 50, seconds: 3, rounds: 5 })
    const cpu = (m: Map<string, RoundReport[]>, label: string) =>
      med(m, label, (x) => x.cpuPerRequest).toFixed(0)
    return {
      measures: [
        {
          name: 'keys/open CPU per request @50',
          value: ratio(fifty, (x) => x.cpuPerRequest),
          unit: 'x',
          target: { op: '<=', value: 1.05 },
          note: `keys ${cpu(fifty, 'keys')} us, open ${cpu(fifty, 'open')} us a request`,
        },
        {
          name: 'keys/open req/s @50',
          value: ratio(fifty, (x) => x.perSecond),
          unit: 'x',
          target: { op: '>=', value: 0.95 },
          note: `keys ${med(fifty, 'keys', (x) => x.perSecond).toFixed(0)} req/s, open ${med(fifty, 'open', (x) => x.perSecond).toFixed(0)}`,
        },
        {
          name: 'keys/open p50 @1',
          value: ratio(one, (x) => x.p50),
          unit: 'x',
          note: `keys ${med(one, 'keys', (x) => x.p50).toFixed(0)} us, open ${med(one, 'open', (x) => x.p50).toFixed(0)} us; CPU ${cpu(one, 'keys')} against ${cpu(one, 'open')} us a request`,
        },
      ],
      notes: [
        'Two `ark dev` on the same manifests, one with --api-keys and a valid key on every request; interleaved rounds, medians: at 1 connection 5 rounds of 2 s, servers pinned; at 50, 5 rounds of 3 s.',
      ],
    }
  } finally {
    await stack.close()
  }
}

const scenario: Scenario = {
  name: 'auth',
  summary: 'an agent request with an API key against the same request to an open ark dev, same run',
  run,
}
export default scenario
