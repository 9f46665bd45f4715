/**
 * agent: `agent/<name>` completions end to end through POST /v1/chat/completions on `ark dev`: the agent on
 * ark's in-process mock model, the agent on the openai provider calling the mock upstream, and the agent on
 * the anthropic provider calling the fake Messages API. The baseline is the mock upstream answering the
 * same request directly: an HTTP server producing the same completion from the same mock model, without
 * the gateway, pool and loop. Each in a process of its own.
 */
import type { LoadReport, LoadTarget, RoundReport } from '../lib/load.ts'
import { loadRounds, runLoad } from '../lib/load.ts'
import type { GateSession, Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import type { ArkProcess } from '../lib/stack.ts'
import {
  CHAT_MESSAGES,
  JSON_HEADERS,
  UPSTREAM_MODEL,
  expectCompletion,
  startAnthropicUpstream,
  startArk,
  startUpstream,
  stopAll,
} from '../lib/stack.ts'
import type { ServerProcess } from '../lib/processes.ts'

interface Route {
  readonly label: string
  readonly url: string
  readonly model: string
  /** Whose CPU a request costs: the upstream when called direct, else ark. */
  readonly pid: number
}

function routesOf(upstream: ServerProcess, ark: ArkProcess): Route[] {
  return [
    { label: 'direct', url: `${upstream.url}/chat/completions`, model: UPSTREAM_MODEL, pid: upstream.pid },
    { label: 'mock agent', url: ark.completions, model: 'agent/mock-agent', pid: ark.pid },
    { label: 'openai agent', url: ark.completions, model: 'agent/openai-agent', pid: ark.pid },
    { label: 'anthropic agent', url: ark.completions, model: 'agent/anthropic-agent', pid: ark.pid },
  ]
}

const bodyOf = (r: Route, stream = false) =>
  JSON.stringify({ model: r.model, messages: CHAT_MESSAGES, ...(stream ? { stream: true } : {}) })

async function start(env?: Record<string, string>) {
  const upstream = await startUpstream()
  let anthropic: ServerProcess | undefined
  let ark: ArkProcess | undefined
  try {
    anthropic = await startAnthropicUpstream()
    ark = await startArk(upstream.url, env, 'dev', anthropic.url)
    const routes = routesOf(upstream, ark)
    for (const r of routes) await expectCompletion(r.url, JSON_HEADERS, bodyOf(r))
    const servers = [upstream, anthropic, ark]
    return { routes, pids: [upstream.pid, ark.pid], close: () => stopAll(servers) }
  } catch (err) {
    await stopAll([upstream, anthropic, ark])
    throw err
  }
}

/** The routes as load targets: the same request to each, and whose CPU it costs. */
const targetsOf = (routes: readonly Route[]): LoadTarget[] =>
  routes.map((r) => ({ label: r.label, url: r.url, headers: JSON_HEADERS, body: bodyOf(r), pid: r.pid }))

const measure = (
  routes: readonly Route[],
  connections: number,
  seconds: number,
  rounds: number,
  more: readonly LoadTarget[] = [],
) => loadRounds([...targetsOf(routes), ...more], { connections, seconds, rounds })

/** The provider agents asked to stream: issue 23's streamed throughput, beside the same agents not streaming. */
const STREAMED = ['openai agent', 'anthropic agent'] as const
const streamedOf = (routes: readonly Route[]): LoadTarget[] =>
  routes
    .filter((r) => (STREAMED as readonly string[]).includes(r.label))
    .map((r) => ({
      label: `${r.label} stream`,
      url: r.url,
      headers: JSON_HEADERS,
      body: bodyOf(r, true),
      pid: r.pid,
    }))

const measureQuick = (routes: readonly Route[], connections: number, pinServers?: readonly number[]) =>
  loadRounds(targetsOf(routes), { connections, seconds: 1, rounds: 1, quick: true, pinServers })

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))

async function run(context: RunContext): Promise<ScenarioResult> {
  const stack = await start()
  try {
    context.log('agent: 1 connection')
    const one = await measure(stack.routes, 1, 3, 3)
    context.log('agent: 50 connections')
    const fifty = await measure(stack.routes, 50, 3, 3, streamedOf(stack.routes))
    context.log('agent: streaming, time to first chunk')
    const firstChunk = new Map<string, LoadReport>()
    for (const r of stack.routes) {
      firstChunk.set(
        r.label,
        await runLoad({
          mode: 'first-chunk',
          url: r.url,
          headers: JSON_HEADERS,
          body: bodyOf(r, true),
          requests: 500,
        }),
      )
    }
    const measures: Measure[] = []
    for (const r of stack.routes) {
      const rps = med(fifty, r.label, (x) => x.perSecond)
      measures.push(
        {
          name: `${r.label} req/s @1`,
          value: med(one, r.label, (x) => x.perSecond),
          unit: 'req/s',
          note: `p50 ${med(one, r.label, (x) => x.p50).toFixed(0)} us, p99 ${med(one, r.label, (x) => x.p99).toFixed(0)} us`,
        },
        {
          name: `${r.label} req/s @50`,
          value: rps,
          unit: 'req/s',
          ...(r.label === 'mock agent' ? { target: { op: '>=' as const, value: 1500 } } : {}),
          note: `p50 ${med(fifty, r.label, (x) => x.p50).toFixed(0)} us, p99 ${med(fifty, r.label, (x) => x.p99).toFixed(0)} us`,
        },
        {
          name: `${r.label} CPU per request @50`,
          value: med(fifty, r.label, (x) => x.cpuPerRequest),
          unit: 'us',
          note: r.label === 'direct' ? 'the upstream process' : 'the ark process',
        },
      )
      const fc = firstChunk.get(r.label)
      if (fc !== undefined) {
        measures.push({
          name: `${r.label} stream first chunk p50`,
          value: fc.p50,
          unit: 'us',
          note: `p99 ${fc.p99.toFixed(0)} us, whole stream p50 ${(fc.p50Total ?? NaN).toFixed(0)} us`,
        })
      }
    }
    for (const agent of STREAMED) {
      const label = `${agent} stream`
      const streamed = med(fifty, label, (x) => x.perSecond)
      measures.push(
        {
          name: `${label} req/s @50`,
          value: streamed,
          unit: 'req/s',
          note: `p50 ${med(fifty, label, (x) => x.p50).toFixed(0)} us; CPU per request ${med(fifty, label, (x) => x.cpuPerRequest).toFixed(0)} us (the ark process)`,
        },
        {
          name: `${agent} streamed / not streamed req/s @50`,
          value: streamed / med(fifty, agent, (x) => x.perSecond),
          unit: 'x',
          ...(agent === 'openai agent' ? { target: { op: '>=' as const, value: 0.8 } } : {}),
        },
        {
          name: `${agent} streamed / not streamed CPU per request @50`,
          value: med(fifty, label, (x) => x.cpuPerRequest) / med(fifty, agent, (x) => x.cpuPerRequest),
          unit: 'x',
        },
      )
    }
    measures.push({
      name: 'mock agent / direct req/s @50',
      value: med(fifty, 'mock agent', (x) => x.perSecond) / med(fifty, 'direct', (x) => x.perSecond),
      unit: 'x',
    })
    return {
      measures,
      notes: [
        "direct = the mock upstream answering the same request itself (the baseline); mock agent = agent/mock-agent on ark's in-process mock model; openai agent = agent/openai-agent on the openai provider, calling that same upstream; anthropic agent = agent/anthropic-agent on the anthropic provider, calling the fake Messages API (test/fakes/anthropic-upstream.ts) with the same mock model behind it.",
        'Throughput and latency: 3 rounds of 3 s per route, routes interleaved, medians of the rounds. First chunk: 500 sequential streaming requests, the first 50 not counted.',
      ],
    }
  } finally {
    await stack.close()
  }
}

async function gate(context: RunContext, env?: Record<string, string>): Promise<GateSession> {
  context.log('agent gate: mock agent vs direct at 1 and 50 connections')
  const stack = await start(env)
  const routes = stack.routes.filter((r) => r.label === 'direct' || r.label === 'mock agent')
  return {
    async sample() {
      const one = await measureQuick(routes, 1, stack.pids)
      const fifty = await measureQuick(routes, 50)
      return {
        'mock agent/direct p50 @1': med(one, 'mock agent', (x) => x.p50) / med(one, 'direct', (x) => x.p50),
        'mock agent/direct req/s @50':
          med(fifty, 'mock agent', (x) => x.perSecond) / med(fifty, 'direct', (x) => x.perSecond),
      }
    },
    close: stack.close,
  }
}

const scenario: Scenario = {
  name: 'agent',
  summary:
    'agent/<name> completions end to end on ark dev (mock model; openai and anthropic providers to mock upstreams), vs the upstream direct',
  run,
  gate: (context) => gate(context),
}
export default scenario
