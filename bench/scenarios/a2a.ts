/**
 * a2a: an A2A SendMessage round trip (v1.0 JSON-RPC, blocking) to `agent/mock-agent` on `ark dev`, against the
 * same agent answering the same message through POST /v1/chat/completions, in the same run on the same
 * process. What A2A costs over the OpenAI face: the JSON-RPC transport, the SDK's request handler, the task
 * store and the event bus. Issue 18's target: at most 1.3 times the chat completion's latency.
 */
import type { RoundReport } from '../lib/load.ts'
import { loadRounds } from '../lib/load.ts'
import type { GateSession, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import { CHAT_MESSAGES, JSON_HEADERS, expectCompletion, startArk, stopAll } from '../lib/stack.ts'

const TEXT = CHAT_MESSAGES[0]?.content ?? 'hello'
const A2A_HEADERS = { ...JSON_HEADERS, 'a2a-version': '1.0' }
const SEND = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'SendMessage',
  params: { message: { messageId: 'bench', role: 'ROLE_USER', parts: [{ text: TEXT }] } },
})

async function start() {
  // No route calls an upstream: the agent is on the in-process mock model.
  const ark = await startArk('http://127.0.0.1:9')
  try {
    const a2aUrl = `${ark.url}/a2a/agent/mock-agent`
    await expectCompletion(ark.completions, JSON_HEADERS, chatBody())
    const answer = await (await fetch(a2aUrl, { method: 'POST', headers: A2A_HEADERS, body: SEND })).text()
    if (!answer.includes('TASK_STATE_COMPLETED'))
      throw new Error(`SendMessage did not complete: ${answer.slice(0, 300)}`)
    const targets = [
      { label: 'chat', url: ark.completions, headers: JSON_HEADERS, body: chatBody(), pid: ark.pid },
      { label: 'a2a', url: a2aUrl, headers: A2A_HEADERS, body: SEND, pid: ark.pid },
    ]
    return { targets, pids: [ark.pid], close: () => stopAll([ark]) }
  } catch (err) {
    await stopAll([ark])
    throw err
  }
}

function chatBody(): string {
  return JSON.stringify({ model: 'agent/mock-agent', messages: CHAT_MESSAGES })
}

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))

async function run(context: RunContext): Promise<ScenarioResult> {
  const stack = await start()
  try {
    context.log('a2a: 1 connection')
    // Pinned, as the latency gates are: both sides pay the same cross-CPU wake-up (lib/processes.ts).
    const one = await loadRounds(stack.targets, {
      connections: 1,
      seconds: 2,
      rounds: 5,
      pinServers: stack.pids,
    })
    context.log('a2a: 50 connections')
    const fifty = await loadRounds(stack.targets, { connections: 50, seconds: 3, rounds: 3 })
    const p50 = (label: string) => med(one, label, (x) => x.p50)
    return {
      measures: [
        {
          name: 'a2a/chat p50 @1',
          value: p50('a2a') / p50('chat'),
          unit: 'x',
          target: { op: '<=', value: 1.3 },
          note: `SendMessage p50 ${p50('a2a').toFixed(0)} us, chat completion p50 ${p50('chat').toFixed(0)} us`,
        },
        {
          name: 'a2a/chat req/s @50',
          value: med(fifty, 'a2a', (x) => x.perSecond) / med(fifty, 'chat', (x) => x.perSecond),
          unit: 'x',
          note: `SendMessage ${med(fifty, 'a2a', (x) => x.perSecond).toFixed(0)} req/s, chat ${med(fifty, 'chat', (x) => x.perSecond).toFixed(0)} req/s`,
        },
        {
          name: 'a2a/chat CPU per request @1',
          value: med(one, 'a2a', (x) => x.cpuPerRequest) / med(one, 'chat', (x) => x.cpuPerRequest),
          unit: 'x',
          note: `SendMessage ${med(one, 'a2a', (x) => x.cpuPerRequest).toFixed(0)} us, chat ${med(one, 'chat', (x) => x.cpuPerRequest).toFixed(0)} us`,
        },
        {
          name: 'a2a CPU per request @50',
          value: med(fifty, 'a2a', (x) => x.cpuPerRequest),
          unit: 'us',
          note: `chat ${med(fifty, 'chat', (x) => x.cpuPerRequest).toFixed(0)} us`,
        },
      ],
      notes: [
        'Both routes on one `ark dev`, agent/mock-agent on the in-process mock model, interleaved, medians of the rounds: at 1 connection 5 rounds of 2 s with the server and the load generator pinned to CPUs of their own; at 50, 3 rounds of 3 s.',
      ],
    }
  } finally {
    await stack.close()
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('a2a gate: SendMessage vs chat completion at 1 connection')
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
      return { 'a2a/chat p50 @1': med(one, 'a2a', (x) => x.p50) / med(one, 'chat', (x) => x.p50) }
    },
    close: stack.close,
  }
}

const scenario: Scenario = {
  name: 'a2a',
  summary: 'A2A SendMessage round trip vs the same agent through /v1/chat/completions, same ark dev',
  run,
  gate,
}
export default scenario
