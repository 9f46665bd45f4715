/**
 * mcp: one tools/call (`echo` of the reference server, mcp-server-everything, in a child process) through
 * ark's MCP client layer (McpClients: the shared connection, its bounded fetch, a timer and signal per call,
 * the result checked and made into a ToolResult), against the SDK's own `Client` calling the same server over
 * the same transport: each side sequential on one connection, interleaved in rounds, in the same run. Issue
 * 17's target: a call through MCP adds at most 1 ms over calling the server directly, and sets up no
 * connection per call (the server counts the sessions it opens; none may open while the calls run).
 *
 * Streamable HTTP and SSE, one server each. The client side (ark's and the SDK's) runs in the bench process,
 * the server in its own; where it can (Linux, 2 CPUs or more) each is pinned to CPUs of its own, as the
 * latency gates pin theirs (bench/lib/processes.ts, pinServers, says why).
 */
import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { McpServerHandle } from '../../gateway/runtime/mcp/client.ts'
import { McpClients } from '../../gateway/runtime/mcp/client.ts'
import type { EverythingServer, EverythingTransport } from '../../test/mcp-everything.ts'
import { startEverything } from '../../test/mcp-everything.ts'
import type { Placement } from '../lib/processes.ts'
import { pinServers } from '../lib/processes.ts'
import type { GateSession, Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median, percentile } from '../lib/stats.ts'

const MESSAGE = 'hello from the benchmark'
const ANSWER = `Echo: ${MESSAGE}`

/**
 * The full run: ROUNDS rounds of CALLS sequential calls per side, after a warm-up of two such rounds. Short
 * rounds, so that the two halves of a round see the same machine (a round of HTTP calls takes about 1.5 s).
 */
const ROUNDS = 12
const CALLS = 300
/** One gate sample: GATE_ROUNDS rounds of GATE_CALLS calls per side, over SSE (about half a second). */
const GATE_ROUNDS = 3
const GATE_CALLS = 100

const TRANSPORTS: readonly EverythingTransport[] = ['streamableHttp', 'sse']
const LABEL: Record<EverythingTransport, string> = { streamableHttp: 'http', sse: 'sse' }

/** One server, and both clients connected to it and ready. */
interface Pair {
  readonly transport: EverythingTransport
  readonly server: EverythingServer
  /** Sessions the server opened while each client connected (1 each, for a healthy client). */
  readonly connectSessions: { readonly ark: number; readonly direct: number }
  /** One tools/call through ark's handle; throws unless the server echoed. */
  readonly ark: () => Promise<void>
  /** The same call through the SDK's Client. */
  readonly direct: () => Promise<void>
  readonly close: () => Promise<void>
}

/**
 * The server counts sessions from its log lines, which arrive on a pipe after the connection that made
 * them: waits until the count reaches `atLeast` (for at most 2 s), then a little longer for stragglers.
 */
async function sessionsSettled(server: EverythingServer, atLeast: number): Promise<number> {
  const deadline = Date.now() + 2000
  while (server.sessions() < atLeast && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  await new Promise((r) => setTimeout(r, 50))
  return server.sessions()
}

async function open(transport: EverythingTransport): Promise<Pair> {
  const server = await startEverything(transport)
  const url = new URL(server.url)
  const client = new Client({ name: 'bench-direct', version: '0.0.0' })
  const mcp = new McpClients()
  let handle: McpServerHandle | undefined
  const close = async () => {
    handle?.release()
    await mcp.close()
    await client.close()
    await server.stop()
  }
  try {
    await client.connect(
      transport === 'sse'
        ? // eslint-disable-next-line @typescript-eslint/no-deprecated -- deprecated in MCP, still served, and ark speaks it
          new SSEClientTransport(url)
        : new StreamableHTTPClientTransport(url),
    )
    const directSessions = await sessionsSettled(server, 1)
    const h = mcp.acquire({
      name: 'bench/everything',
      url: server.url,
      transport: transport === 'sse' ? 'sse' : 'http',
      headers: {},
    })
    handle = h
    const state = await h.settled()
    if (state.status !== 'ready') {
      throw new Error(
        `ark did not connect to mcp-server-everything: ${state.status === 'failed' ? state.error : state.status}`,
      )
    }
    const arkSessions = (await sessionsSettled(server, directSessions + 1)) - directSessions
    const signal = new AbortController().signal
    return {
      transport,
      server,
      connectSessions: { ark: arkSessions, direct: directSessions },
      ark: async () => {
        const r = await h.callTool('echo', { message: MESSAGE }, signal)
        if (r.isError === true || r.content !== ANSWER)
          throw new Error(`ark's echo call answered ${JSON.stringify(r)}`)
      },
      direct: async () => {
        const r = await client.callTool({ name: 'echo', arguments: { message: MESSAGE } })
        const first: unknown = Array.isArray(r.content) ? (r.content[0] as unknown) : undefined
        if (r.isError === true || (first as { text?: unknown } | undefined)?.text !== ANSWER)
          throw new Error(`the SDK's echo call answered ${JSON.stringify(r)}`)
      },
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Microseconds per call, `calls` sequential calls. */
async function time(calls: number, call: () => Promise<void>): Promise<number[]> {
  const us: number[] = []
  for (let i = 0; i < calls; i++) {
    const start = performance.now()
    await call()
    us.push((performance.now() - start) * 1000)
  }
  return us
}

interface Latency {
  /** Median of the rounds' p50s, microseconds. */
  readonly p50: number
  /** p99 of every call of every round. */
  readonly p99: number
  /** The rounds' p50s, to show their spread. */
  readonly rounds: readonly number[]
}

interface Comparison {
  readonly ark: Latency
  readonly direct: Latency
  /** Median of the rounds' ark/direct p50 ratios. */
  readonly ratio: number
  /** Median of the rounds' ark - direct p50 differences, microseconds. */
  readonly added: number
  /** Sessions the server opened while the calls ran (both sides). */
  readonly opened: number
}

/** Rounds of sequential calls, the two sides taking turns to go first, so that machine noise hits both. */
async function compare(pair: Pair, rounds: number, calls: number): Promise<Comparison> {
  const before = pair.server.sessions()
  const ark: number[][] = []
  const direct: number[][] = []
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      ark.push(await time(calls, pair.ark))
      direct.push(await time(calls, pair.direct))
    } else {
      direct.push(await time(calls, pair.direct))
      ark.push(await time(calls, pair.ark))
    }
  }
  const opened = (await sessionsSettled(pair.server, before)) - before
  const latency = (samples: number[][]): Latency => {
    const p50s = samples.map((s) => percentile(s, 50))
    return { p50: median(p50s), p99: percentile(samples.flat(), 99), rounds: p50s }
  }
  const a = latency(ark)
  const d = latency(direct)
  const ratios = a.rounds.map((x, i) => x / (d.rounds[i] ?? NaN))
  const added = a.rounds.map((x, i) => x - (d.rounds[i] ?? NaN))
  return { ark: a, direct: d, ratio: median(ratios), added: median(added), opened }
}

/**
 * Pins the server to the last CPU and this process (ark's client and the SDK's) to the others, or undefined
 * where that is not possible. Returns a release that lets both run anywhere again.
 */
function pin(serverPid: number): Placement | undefined {
  const placement = pinServers([serverPid])
  if (placement === undefined) return undefined
  const self = (cpus: string) =>
    execFileSync('taskset', ['--all-tasks', '--pid', '--cpu-list', cpus, String(process.pid)], {
      stdio: 'ignore',
    })
  try {
    self(placement.load)
  } catch {
    placement.release()
    return undefined
  }
  return {
    load: placement.load,
    release() {
      placement.release()
      try {
        self(`0-${String(availableParallelism() - 1)}`)
      } catch {
        // Left pinned: the rest of the run is slower, not wrong.
      }
    },
  }
}

const us = (x: number) => `${x.toFixed(0)} us`

function measuresOf(pair: Pair, c: Comparison, calls: number): Measure[] {
  const t = LABEL[pair.transport]
  const spread = (l: Latency) => `rounds ${l.rounds.map((x) => x.toFixed(0)).join(' ')}`
  return [
    {
      name: `${t} ark added p50`,
      value: c.added,
      unit: 'us',
      target: { op: '<=', value: 1000 },
      note: `ark ${us(c.ark.p50)}, direct ${us(c.direct.p50)}; median of the rounds’ differences`,
    },
    { name: `${t} ark p50`, value: c.ark.p50, unit: 'us', note: `p99 ${us(c.ark.p99)}; ${spread(c.ark)}` },
    {
      name: `${t} direct p50`,
      value: c.direct.p50,
      unit: 'us',
      note: `p99 ${us(c.direct.p99)}; ${spread(c.direct)}`,
    },
    { name: `${t} ark/direct p50`, value: c.ratio, unit: 'x', note: 'median of the rounds’ ratios' },
    {
      name: `${t} sessions opened during calls`,
      value: c.opened,
      unit: 'sessions',
      target: { op: '<=', value: 0 },
      note: `${String(calls)} calls each way; connecting opened ${String(pair.connectSessions.ark)} (ark), ${String(pair.connectSessions.direct)} (direct)`,
    },
  ]
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const measures: Measure[] = []
  let pinned = false
  for (const transport of TRANSPORTS) {
    const pair = await open(transport)
    const placement = pin(pair.server.pid)
    pinned = placement !== undefined
    try {
      context.log(
        `${LABEL[transport]}: warm-up, then ${String(ROUNDS)} rounds of ${String(CALLS)} calls each way`,
      )
      await compare(pair, 2, CALLS)
      measures.push(...measuresOf(pair, await compare(pair, ROUNDS, CALLS), ROUNDS * CALLS))
    } finally {
      placement?.release()
      await pair.close()
    }
  }
  return {
    measures,
    notes: [
      "ark = McpServerHandle.callTool('echo') through McpClients (gateway/runtime/mcp/client.ts): the shared connection, its bounded fetch, a timer and an AbortController per call, the result read loosely and made into a ToolResult. direct = the SDK's Client.callTool on its own connection with the same transport (@modelcontextprotocol/sdk 1.x, global fetch), which is also what ark's connection is built on.",
      `mcp-server-everything in a child process, one per transport; both clients in the bench process. ${String(ROUNDS)} rounds of ${String(CALLS)} sequential calls per side after two warm-up rounds, the sides taking turns to go first; p50 = median of the rounds' p50s, p99 over every call; added and ark/direct = medians of each round's difference and ratio, so that the two sides of a figure always come from the same seconds.`,
      pinned
        ? 'The server ran pinned to the last CPU and the bench process to the others (taskset), so that every call pays the same cross-CPU wake-up.'
        : 'Not pinned (one CPU, or no taskset): the scheduler placed the processes.',
      'Sessions: what the server logged opening (one per MCP connection) while the measured calls ran, both sides together; a client that connected per call would open one per call.',
    ],
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('mcp gate: SSE, ark vs the SDK Client')
  const pair = await open('sse')
  const placement = pin(pair.server.pid)
  try {
    await compare(pair, 2, GATE_CALLS * 2)
  } catch (err) {
    placement?.release()
    await pair.close()
    throw err
  }
  return {
    async sample() {
      const c = await compare(pair, GATE_ROUNDS, GATE_CALLS)
      return {
        'ark/direct p50': c.ratio,
        'sessions opened/call': c.opened / (GATE_ROUNDS * GATE_CALLS * 2),
      }
    },
    async close() {
      placement?.release()
      await pair.close()
    },
  }
}

const scenario: Scenario = {
  name: 'mcp',
  summary:
    "an MCP tools/call (echo, mcp-server-everything) through ark's McpClients vs the SDK's Client calling the same server, HTTP and SSE",
  run,
  gate,
}
export default scenario
