/**
 * team: a sequential team of four agents on the in-process mock model (`team/mock-team`), against one of the
 * same agents (`agent/mock-agent`), through POST /v1/chat/completions on the same `ark dev`, in the same run.
 * A team request is one HTTP request and admission, then four turns, each a task on its member's pool with
 * the conversation so far. Its time per turn, over the single agent's whole request, says what a turn costs
 * against what a request costs: at most 1 means a team's per-turn overhead (the turn's bookkeeping, events,
 * the growing conversation) is no more than the single-agent path's (HTTP, admission, the answer). Issue 19's
 * target.
 */
import type { RoundReport } from '../lib/load.ts'
import { loadRounds } from '../lib/load.ts'
import type { GateSession, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import {
  CHAT_MESSAGES,
  JSON_HEADERS,
  TEAM_MEMBERS,
  expectCompletion,
  startArk,
  stopAll,
} from '../lib/stack.ts'

const TURNS = TEAM_MEMBERS.length

async function start() {
  // No route calls an upstream: every agent is on the in-process mock model.
  const ark = await startArk('http://127.0.0.1:9')
  try {
    await expectCompletion(ark.completions, JSON_HEADERS, body('agent/mock-agent'))
    await expectCompletion(ark.completions, JSON_HEADERS, body('team/mock-team'))
    const targets = [
      {
        label: 'agent',
        url: ark.completions,
        headers: JSON_HEADERS,
        body: body('agent/mock-agent'),
        pid: ark.pid,
      },
      {
        label: 'team',
        url: ark.completions,
        headers: JSON_HEADERS,
        body: body('team/mock-team'),
        pid: ark.pid,
      },
    ]
    return { targets, pids: [ark.pid], close: () => stopAll([ark]) }
  } catch (err) {
    await stopAll([ark])
    throw err
  }
}

function body(model: string): string {
  return JSON.stringify({ model, messages: CHAT_MESSAGES })
}

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))

/** A team turn's p50 share over the agent request's p50. */
const perTurn = (m: Map<string, RoundReport[]>) =>
  med(m, 'team', (x) => x.p50) / TURNS / med(m, 'agent', (x) => x.p50)

async function run(context: RunContext): Promise<ScenarioResult> {
  const stack = await start()
  try {
    context.log('team: 1 connection')
    const one = await loadRounds(stack.targets, {
      connections: 1,
      seconds: 2,
      rounds: 5,
      pinServers: stack.pids,
    })
    context.log('team: 50 connections')
    const fifty = await loadRounds(stack.targets, { connections: 50, seconds: 3, rounds: 3 })
    const p50 = (label: string) => med(one, label, (x) => x.p50)
    const cpu = (m: Map<string, RoundReport[]>, label: string) => med(m, label, (x) => x.cpuPerRequest)
    return {
      measures: [
        {
          name: 'team turn/agent request p50 @1',
          value: perTurn(one),
          unit: 'x',
          target: { op: '<=', value: 1 },
          note: `team of ${String(TURNS)} p50 ${p50('team').toFixed(0)} us (${(p50('team') / TURNS).toFixed(0)} us a turn), agent p50 ${p50('agent').toFixed(0)} us`,
        },
        {
          name: 'team turn/agent request CPU @1',
          value: cpu(one, 'team') / TURNS / cpu(one, 'agent'),
          unit: 'x',
          note: `team ${cpu(one, 'team').toFixed(0)} us a request, agent ${cpu(one, 'agent').toFixed(0)} us`,
        },
        {
          name: 'team turn/agent request CPU @50',
          value: cpu(fifty, 'team') / TURNS / cpu(fifty, 'agent'),
          unit: 'x',
          note: `team ${med(fifty, 'team', (x) => x.perSecond).toFixed(0)} req/s, agent ${med(fifty, 'agent', (x) => x.perSecond).toFixed(0)} req/s`,
        },
      ],
      notes: [
        `Both targets on one \`ark dev\`, interleaved, medians of the rounds: at 1 connection 5 rounds of 2 s with the server and the load generator pinned to CPUs of their own; at 50, 3 rounds of 3 s. The team is sequential, ${String(TURNS)} members on the mock model.`,
      ],
    }
  } finally {
    await stack.close()
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('team gate: a team turn vs an agent request at 1 connection')
  const stack = await start()
  return {
    async sample() {
      const one = await loadRounds(stack.targets, {
        connections: 1,
        seconds: 1,
        rounds: 1,
        quick: true,
        pinServers: stack.pids,
      })
      return { 'team turn/agent request p50 @1': perTurn(one) }
    },
    close: stack.close,
  }
}

const scenario: Scenario = {
  name: 'team',
  summary: 'a sequential team of four mock agents: time per turn vs one agent request, same ark dev',
  run,
  gate,
}
export default scenario
