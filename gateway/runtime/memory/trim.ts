/**
 * Fitting a remembered conversation into an agent's token budget (limits.maxTokensPerCall): the oldest
 * exchanges go first, whole. An exchange is a user message and everything after it up to the next user
 * message (the assistant's tool calls, the tool results, the answer), so what is kept never holds a tool
 * result without the assistant message that called it, nor a call without its results, and always starts
 * with a user message (some providers refuse a conversation that starts otherwise).
 */
import type { ChatMessage } from '../messages.ts'
import { textOf } from '../messages.ts'

/**
 * The share of the budget the input (history and new messages) may take. The loop gives the reply what the
 * input leaves of the budget, and the 4-characters estimate is rough (tool definitions, the system prompt's
 * template, tokenizers that count more): a history that filled the budget would leave the reply nothing.
 */
export const INPUT_SHARE = 0.75

/** History fits this many tokens when the agent sets no limits.maxTokensPerCall (ArkAgent's default). */
export const DEFAULT_HISTORY_TOKENS = 8000

/** ark's estimate, as the tool loop (loop.ts) makes it for max_tokens. */
export const CHARS_PER_TOKEN = 4

/** Characters a message weighs in the estimate: its text, and its tool calls' arguments (as loop.ts counts). */
export function messageChars(m: ChatMessage): number {
  if (m.role === 'tool') return m.content.length
  let n = textOf(m.content).length
  if (m.role === 'assistant') for (const c of m.tool_calls ?? []) n += c.function.arguments.length
  return n
}

/**
 * The newest whole exchanges of `history` that, with `incoming` (every other message of the call: system
 * prompt, the new user and tool messages), fit INPUT_SHARE of `budgetTokens`. A contiguous suffix of
 * `history`: an exchange that does not fit, or is broken (a tool result without its call, a call without
 * its results), ends it. `Infinity` keeps every whole exchange.
 */
export function fitHistory(
  history: readonly ChatMessage[],
  incoming: readonly ChatMessage[],
  budgetTokens: number,
): ChatMessage[] {
  if (!(budgetTokens > 0)) return []
  let available = Math.floor(budgetTokens * INPUT_SHARE) * CHARS_PER_TOKEN
  for (const m of incoming) available -= messageChars(m)
  let start = history.length
  let end = history.length
  // From the newest exchange back: each starts at a user message. What precedes the oldest user message is
  // the tail of an exchange whose start is gone (trimmed by maxEntries), and is never kept.
  for (let i = history.length - 1; i >= 0; i--) {
    if (history[i]?.role !== 'user') continue
    const exchange = history.slice(i, end)
    if (!wellFormed(exchange)) break
    let chars = 0
    for (const m of exchange) chars += messageChars(m)
    if (chars > available) break
    available -= chars
    start = i
    end = i
  }
  return history.slice(start)
}

/** Every tool call is answered before anything else is said, and every tool result answers a call. */
function wellFormed(exchange: readonly ChatMessage[]): boolean {
  const pending = new Set<string>()
  for (const m of exchange) {
    if (m.role === 'tool') {
      if (!pending.delete(m.tool_call_id)) return false
      continue
    }
    if (pending.size > 0) return false
    if (m.role === 'assistant') for (const c of m.tool_calls ?? []) pending.add(c.id)
  }
  return pending.size === 0
}
