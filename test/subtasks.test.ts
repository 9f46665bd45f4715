/**
 * Seed 003's built-in tools end to end: a client calls an ArkAgent through the HTTP gateway with the openai
 * SDK, and the agent (on the mock model, driven by `tool {json}` lines) queues subtasks, collects them, and
 * delegates to its team's roles, each task going through the gateway's own pools.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type OpenAI from 'openai'
import type { RunningGateway } from './gateway-server.ts'
import { startGateway } from './gateway-server.ts'
import { clientFor } from './gateway-suite.ts'

let gw: RunningGateway
let client: OpenAI

beforeAll(async () => {
  gw = await startGateway('test/fixtures/subtasks', { poolConcurrency: 8, maxQueued: 16 })
  client = clientFor(gw.url)
})
afterAll(() => gw.close())

const line = (tool: string, args: object) => `${tool} ${JSON.stringify(args)}`

/** Asks an agent and returns its answer: on the mock model, one `tool: result` line per tool call. */
async function ask(agent: string, ...lines: string[]): Promise<string> {
  const completion = await client.chat.completions.create({
    model: `agent/${agent}`,
    messages: [{ role: 'user', content: lines.join('\n') }],
  })
  expect(completion.choices[0]?.finish_reason).toBe('stop')
  return completion.choices[0]?.message.content ?? ''
}

/** The answer's lines for `tool`, with the `tool: ` prefix taken off. */
const resultsOf = (answer: string, tool: string) =>
  answer
    .split('\n')
    .filter((l) => l.startsWith(`${tool}: `))
    .map((l) => l.slice(tool.length + 2))

describe('seed 003 built-in tools through the gateway', () => {
  it('a supervisor queues two subtasks at once, then collects both answers', async () => {
    const answer = await ask(
      'lead',
      line('submit_subtask', { agent: 'researcher', input: 'answer: Paris is the capital of France' }) +
        ' ' +
        line('submit_subtask', {
          agent: 'default/researcher',
          input: 'answer: Berlin is the capital of Germany',
        }),
      line('get_subtask_result', { id: 'subtask-1' }) + ' ' + line('get_subtask_result', { id: 'subtask-2' }),
    )
    expect(resultsOf(answer, 'submit_subtask').map((r) => JSON.parse(r) as unknown)).toEqual([
      { id: 'subtask-1', agent: 'default/researcher', status: 'submitted' },
      { id: 'subtask-2', agent: 'default/researcher', status: 'submitted' },
    ])
    expect(resultsOf(answer, 'get_subtask_result').map((r) => JSON.parse(r) as unknown)).toEqual([
      {
        id: 'subtask-1',
        agent: 'default/researcher',
        status: 'succeeded',
        content: 'Paris is the capital of France',
      },
      {
        id: 'subtask-2',
        agent: 'default/researcher',
        status: 'succeeded',
        content: 'Berlin is the capital of Germany',
      },
    ])
  })

  it('a mistaken subtask request comes back to the model as a tool error, and the request still answers', async () => {
    const answer = await ask(
      'lead',
      line('submit_subtask', { agent: 'nobody', input: 'hi' }),
      line('get_subtask_result', { id: 'subtask-7' }),
    )
    expect(resultsOf(answer, 'submit_subtask')).toEqual([
      'error: there is no agent default/nobody; name an agent of this installation',
    ])
    expect(resultsOf(answer, 'get_subtask_result')).toEqual([
      'error: there is no subtask "subtask-7" in this task; it has submitted none',
    ])
  })

  it('delegate hands work to a team role and returns its answer', async () => {
    const answer = await ask('lead', line('delegate', { role: 'writer', input: 'answer: a first draft' }))
    expect(answer).toBe('delegate: a first draft')
  })

  it('delegate refuses a role the team does not allow, and a cycle back to the delegating agent', async () => {
    expect(await ask('writer', line('delegate', { role: 'lead', input: 'you do it' }))).toBe(
      'delegate: error: writer may not delegate to role "lead"; it may delegate to: reviewer',
    )
    // lead → reviewer, and the reviewer tries to hand it back to lead.
    const back = line('delegate', { role: 'lead', input: 'answer: never runs' })
    expect(await ask('lead', line('delegate', { role: 'reviewer', input: back }))).toBe(
      'delegate: delegate: error: delegation cycle: lead → reviewer → lead',
    )
  })

  it('an agent outside any team that lets it delegate does not have delegate', async () => {
    // The researcher's role has no canDelegate: the model is not offered the tool, so it cannot call it.
    const answer = await ask('researcher', line('delegate', { role: 'writer', input: 'x' }))
    expect(answer).toMatch(/^You said: delegate /)
  })
})
