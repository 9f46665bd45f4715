/**
 * Semantic health (ArkAgent `livenessProbe: {type: semantic, intervalSeconds, validatorPrompt}`): process
 * liveness says nothing about whether the model still gives useful answers, so a worker asks it the
 * validator prompt at the interval and keeps the verdict. Readiness reads the cached verdict: a probe request
 * never costs an LLM call, however often Kubernetes asks.
 *
 * The check passes when the model answers with text; when the prompt ends with `: <WORD>` (the seed's
 * "Reply with exactly one word: HEALTHY"), the answer must also contain that word, in any case.
 */
import type { ObjectRef, ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { AgentRuntime } from './agent-runtime.ts'
import { textOf } from './messages.ts'

export const DEFAULT_VALIDATOR_PROMPT = 'Reply with exactly one word: HEALTHY'
/** A check that takes longer than this (or than the interval) fails. */
const MAX_CHECK_MS = 30_000

export interface SemanticVerdict {
  readonly ready: boolean
  /** Why, in words for /readyz and logs. */
  readonly reason: string
  /** Epoch ms of the check; absent when there is nothing to check or the first check is running. */
  readonly checkedAt?: number
}

/** The word the answer must hold, when the prompt names one at its end. */
export function expectedWord(prompt: string): string | undefined {
  return /:\s*["'`]?([\p{L}\p{N}_-]+)["'`]?\s*\.?\s*$/u.exec(prompt)?.[1]
}

export function judge(prompt: string, answer: string): SemanticVerdict {
  const expected = expectedWord(prompt)
  const text = answer.trim()
  const shown = JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text)
  if (text === '') return { ready: false, reason: 'the model answered the validator prompt with no text' }
  if (expected !== undefined && !text.toLowerCase().includes(expected.toLowerCase()))
    return { ready: false, reason: `the model answered ${shown} where ${expected} was expected` }
  return { ready: true, reason: `the model answered ${shown}` }
}

export class SemanticProbe {
  readonly #runtime: AgentRuntime
  readonly #catalog: Catalog
  readonly #agent: ObjectRef
  readonly #onVerdict: ((v: SemanticVerdict) => void) | undefined
  #verdict: SemanticVerdict = { ready: false, reason: 'the first semantic check is running' }
  #timer: ReturnType<typeof setTimeout> | undefined
  readonly #stop = new AbortController()

  constructor(
    runtime: AgentRuntime,
    catalog: Catalog,
    agent: ObjectRef,
    onVerdict?: (verdict: SemanticVerdict) => void,
  ) {
    this.#runtime = runtime
    this.#catalog = catalog
    this.#agent = agent
    this.#onVerdict = onVerdict
  }

  /** The cached verdict; agents without a semantic probe are always ready. */
  get verdict(): SemanticVerdict {
    const probe = this.#catalog.get('Agent', this.#agent)?.spec.probe
    if (probe?.type !== 'semantic') return { ready: true, reason: 'no semantic probe' }
    return this.#verdict
  }

  start(): void {
    void this.#tick()
  }

  close(): void {
    this.#stop.abort()
    clearTimeout(this.#timer)
  }

  async #tick(): Promise<void> {
    const agent = this.#catalog.get('Agent', this.#agent)
    const probe = agent?.spec.probe
    // Checked again each round: the probe may be added, changed or removed while the worker runs.
    const interval = probe?.type === 'semantic' ? probe.intervalSeconds : 60
    if (agent !== undefined && probe?.type === 'semantic') {
      const verdict = await this.#check(agent, probe.validatorPrompt ?? DEFAULT_VALIDATOR_PROMPT, interval)
      if (this.#stop.signal.aborted) return
      const changed = verdict.ready !== this.#verdict.ready || verdict.reason !== this.#verdict.reason
      this.#verdict = verdict
      if (changed) this.#onVerdict?.(verdict)
    }
    if (this.#stop.signal.aborted) return
    this.#timer = setTimeout(() => void this.#tick(), Math.max(1, interval) * 1000)
  }

  async #check(
    agent: ResourceOf<'Agent'>,
    prompt: string,
    intervalSeconds: number,
  ): Promise<SemanticVerdict> {
    const checkedAt = Date.now()
    const limit = Math.min(MAX_CHECK_MS, Math.max(1000, intervalSeconds * 1000))
    const timer = new AbortController()
    const t = setTimeout(() => timer.abort(new DOMException('the check timed out', 'TimeoutError')), limit)
    try {
      const provider = this.#runtime.providerFor(agent)
      const completion = await provider.complete({
        messages: [{ role: 'user', content: prompt }],
        tools: [],
        signal: AbortSignal.any([this.#stop.signal, timer.signal]),
      })
      return { ...judge(prompt, textOf(completion.message.content)), checkedAt }
    } catch (err) {
      const why = timer.signal.aborted
        ? `the model did not answer the validator prompt within ${String(limit / 1000)} s`
        : `the model call failed: ${err instanceof Error ? err.message : String(err)}`
      return { ready: false, reason: why, checkedAt }
    } finally {
      clearTimeout(t)
    }
  }
}
