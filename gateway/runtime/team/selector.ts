/**
 * The selector strategy's choice of the next member, as ARK's completions executor makes it: one call to the
 * selector agent's model with the rendered selector prompt (its `{{.Roles}}`, `{{.Participants}}` and
 * `{{.History}}`), ARK's `select-next-speaker` tool (the candidates as an enum) and, when enabled, its
 * `terminate` tool, the call required to use a tool. A model that answers in words instead is read as ARK's
 * earlier versions read it: the exact name, then any case, then the latest name mentioned after a cue word
 * (choose, select, pick, next), then the latest name mentioned at all. A choice that names no candidate ends
 * the team, except on the first turn, where the first candidate speaks: a team that said nothing answers
 * nobody.
 */
import type { TeamMember, TeamSpec } from '../../../controller/api/index.ts'
import type { ChatMessage, ToolDefinition, Usage } from '../messages.ts'
import { textOf } from '../messages.ts'
import { parseTemplate } from '../template.ts'
import type { TeamRun } from './run.ts'
import { Stop } from './stop.ts'

export const SELECT_TOOL = 'select-next-speaker'

/** The most of the conversation the selector reads, newest kept: enough to choose by, bounded however long a run goes. */
const MAX_HISTORY_CHARS = 32_000
export const TERMINATE_TOOL = 'terminate'

export const DEFAULT_SELECTOR_PROMPT = `You are in a role play game. The following roles are available:
{{.Roles}}.
Read the following conversation, then use the select-next-speaker tool to select the next role from {{.Participants}} to play.

{{.History}}

Read the above conversation, then use the select-next-speaker tool to select the next role from {{.Participants}} to play.`

export const DEFAULT_TERMINATE_PROMPT =
  'If the most recent user message has been given an adequate response, do not return a role. Instead call the terminate tool.'

export type Pick =
  | { readonly member: TeamMember; readonly usage: Usage }
  /** The selector ended the team with this answer. */
  | { readonly terminate: string; readonly note: string; readonly usage: Usage }
  /** The selector named no candidate: why, for the team's last event. */
  | { readonly none: string; readonly usage: Usage }

export async function selectNext(
  run: TeamRun,
  selector: TeamSpec['selector'],
  candidates: readonly TeamMember[],
  previous: TeamMember | undefined,
): Promise<Pick> {
  const { team, deps } = run
  const name = selector?.agent
  if (name === undefined) throw Stop.failed(`${run.id} has no selector agent`)
  const agent = deps.catalog.get('Agent', { namespace: team.ref.namespace, name })
  if (agent === undefined)
    throw Stop.failed(`${run.id}: selector agent ${team.ref.namespace}/${name} does not exist`)
  const provider = deps.providerFor(agent)
  const terminate = selector?.enableTerminateTool === true
  const prompt = parseTemplate(selector?.selectorPrompt ?? DEFAULT_SELECTOR_PROMPT).render({
    Roles: candidates.map((m) => roleOf(run, m)).join(', '),
    Participants: candidates.map((m) => m.name).join(', '),
    History: historyOf([...run.history, ...run.input, ...run.transcript]).slice(-MAX_HISTORY_CHARS),
  })
  const system =
    `${prompt}\n\nUse the ${SELECT_TOOL} tool to express your next speaker selection.` +
    (terminate ? `\n\n${selector.terminatePrompt ?? DEFAULT_TERMINATE_PROMPT}` : '')
  const user = terminate
    ? `Select the next speaker to respond using the ${SELECT_TOOL} tool, or use the ${TERMINATE_TOOL} tool if you think the user's original question has been answered.`
    : `Select the next speaker to respond using the ${SELECT_TOOL} tool.`
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ]
  const tools = [selectTool(candidates), ...(terminate ? [TERMINATE] : [])]
  let completion
  try {
    completion = await provider.complete({
      messages,
      tools,
      parameters: { tool_choice: 'required' },
      signal: run.signal,
    })
  } catch (err) {
    throw new Stop(
      run.signal.aborted ? 'cancelled' : 'error',
      undefined,
      undefined,
      `${run.id}: the selector (agent ${name}) failed: ${err instanceof Error ? err.message : String(err)}`,
    )
  }
  const usage = completion.usage
  const reply = completion.message
  for (const call of reply.tool_calls ?? []) {
    const args = argumentsOf(call.function.arguments)
    if (call.function.name === TERMINATE_TOOL && terminate) {
      const response = typeof args.response === 'string' ? args.response : ''
      return {
        terminate: response === '' ? run.lastAnswer() : response,
        note: 'the selector ended the team',
        usage,
      }
    }
    if (call.function.name === SELECT_TOOL) {
      const said = Object.values(args).find((v): v is string => typeof v === 'string') ?? ''
      const member = byName(candidates, said)
      if (member !== undefined) return { member, usage }
      return fallback(
        candidates,
        previous,
        `the selector chose "${said.slice(0, 64)}", which is not a candidate`,
        usage,
      )
    }
  }
  const text = textOf(reply.content).trim()
  const member = mentioned(candidates, text)
  if (member !== undefined) return { member, usage }
  return fallback(candidates, previous, 'the selector named no member', usage)
}

function fallback(
  candidates: readonly TeamMember[],
  previous: TeamMember | undefined,
  why: string,
  usage: Usage,
): Pick {
  const first = candidates[0]
  if (previous === undefined && first !== undefined) return { member: first, usage }
  return { none: why, usage }
}

/** `name: description` of a member, as ARK lists roles (the name alone without a description). */
function roleOf(run: TeamRun, m: TeamMember): string {
  const description =
    m.type === 'agent'
      ? run.deps.catalog.get('Agent', m.ref)?.spec.description
      : run.deps.catalog.get('Team', m.ref)?.spec.description
  return description === undefined || description === '' ? m.name : `${m.name}: ${description}`
}

/** ARK's history text: `# <speaker>:\n<content>\n` per user and assistant message, tools and system left out. */
function historyOf(messages: readonly ChatMessage[]): string {
  const out: string[] = []
  for (const m of messages) {
    if (m.role === 'user') out.push(`# user:\n${textOf(m.content)}\n`)
    else if (m.role === 'assistant' && m.content !== null && m.content !== '')
      out.push(`# ${m.name ?? 'assistant'}:\n${m.content}\n`)
  }
  return out.join('\n')
}

function selectTool(candidates: readonly TeamMember[]): ToolDefinition {
  return {
    type: 'function',
    function: {
      name: SELECT_TOOL,
      description: 'Select the next speaker to respond in the conversation.',
      parameters: {
        type: 'object',
        properties: {
          speaker: {
            type: 'string',
            enum: candidates.map((m) => m.name),
            description: 'The name of the role to speak next.',
          },
        },
        required: ['speaker'],
      },
    },
  }
}

const TERMINATE: ToolDefinition = {
  type: 'function',
  function: {
    name: TERMINATE_TOOL,
    description:
      'Use this function to provide a final response to the user and then end the current conversation',
    parameters: {
      type: 'object',
      properties: {
        response: { type: 'string', description: 'The message to send before ending the conversation' },
      },
      required: ['response'],
    },
  },
}

function argumentsOf(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text)
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

function byName(candidates: readonly TeamMember[], said: string): TeamMember | undefined {
  const s = said.trim()
  return (
    candidates.find((m) => m.name === s) ?? candidates.find((m) => m.name.toLowerCase() === s.toLowerCase())
  )
}

const CUE = /\b(?:choose|chose|chosen|select|selected|pick|picked|next)\b/gi

/** The member a free-text answer names: exact, any case, after a cue word (the latest), or the latest mention. */
export function mentioned(candidates: readonly TeamMember[], text: string): TeamMember | undefined {
  const exact = byName(candidates, text)
  if (exact !== undefined) return exact
  const lower = text.toLowerCase()
  let cued: { member: TeamMember; at: number } | undefined
  let latest: { member: TeamMember; at: number } | undefined
  const cues = [...lower.matchAll(CUE)].map((m) => m.index)
  for (const m of candidates) {
    const pattern = new RegExp(`\\b${escape(m.name.toLowerCase())}\\b`, 'g')
    for (const hit of lower.matchAll(pattern)) {
      const at = hit.index
      if (latest === undefined || at > latest.at) latest = { member: m, at }
      if (cues.some((c) => c < at && at - c <= 48) && (cued === undefined || at > cued.at))
        cued = { member: m, at }
    }
  }
  return (cued ?? latest)?.member
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
