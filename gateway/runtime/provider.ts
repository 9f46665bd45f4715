/**
 * Providers: one model behind one interface. The tool loop only ever calls `complete`; each provider maps the
 * OpenAI-shaped conversation to its own API and back. A provider is created once per Model (or per model id,
 * for ArkAgent's `model: gpt-4o`) and reused for every call, so its SDK client keeps its connections warm.
 */
import type { JsonSchema, ProviderType } from '../../controller/api/index.ts'
import type { AssistantMessage, ChatMessage, ToolDefinition, Usage } from './messages.ts'
import { Redactor } from './redactor.ts'

export interface CompletionRequest {
  readonly messages: readonly ChatMessage[]
  readonly tools: readonly ToolDefinition[]
  /** The answer must be JSON that matches this schema (an agent's outputSchema, a client's response_format). */
  readonly outputSchema?: JsonSchema
  /** Most tokens the reply may use, as a client asked (its max_tokens); it replaces the Model's own. */
  readonly maxTokens?: number
  /**
   * An upper bound from limits.maxTokensPerCall (what the input leaves of the budget): the reply cap is the
   * smaller of this and the cap the call would have anyway. With no cap otherwise, a bound above what models
   * accept as an output limit is not sent (the runtime checks the usage after the call either way).
   */
  readonly replyBudget?: number
  /**
   * Sampling and other request parameters the caller chose (temperature, top_p, stop, ...), in OpenAI's
   * names. They override the Model's own properties; each provider maps the ones it knows.
   */
  readonly parameters?: Readonly<Record<string, unknown>>
  /**
   * Request parameters the agent's settings choose (ArkSettings `temperature`), in OpenAI's names: below the
   * Model's own properties, which override them, as `parameters` override both.
   */
  readonly defaults?: Readonly<Record<string, unknown>>
  /**
   * The answer should be one JSON object (ArkSettings `outputFormat: structured-json`): OpenAI's JSON mode
   * (`response_format: json_object`) where the API has it; the agent's prompt asks for it everywhere.
   * An `outputSchema` takes its place when there is one.
   */
  readonly json?: boolean
  readonly signal: AbortSignal
  /**
   * Called with each piece of answer text as it arrives; providers that cannot stream call it once. When it
   * returns a promise, the provider awaits it before it reads on: the reader is slow, so the model's stream
   * waits (and with it, by TCP, the upstream) instead of piling text up in memory.
   */
  readonly onDelta?: (text: string) => void | Promise<void>
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter'

export interface Completion {
  readonly message: AssistantMessage
  readonly usage: Usage
  readonly finishReason: FinishReason
}

export interface Provider {
  /** OpenTelemetry `gen_ai.provider.name`; `a2a` for a remote A2A agent in the place of a model. */
  readonly provider: ProviderType | 'a2a'
  /** The provider's model id (`gen_ai.request.model`). */
  readonly model: string
  complete(request: CompletionRequest): Promise<Completion>
  /**
   * A cheap check that the model is there and the credentials work (list or retrieve the model; never a
   * completion that costs tokens). Resolves when healthy, throws a ProviderError that says why not.
   */
  probe(signal: AbortSignal): Promise<void>
  /**
   * Only for upstreams that speak OpenAI chat completions (openai, azure): send a client's request body as
   * is (its `model` already replaced) and return the upstream's response unread, so that a direct
   * `model/<name>` call is forwarded without being parsed. Errors throw a ProviderError.
   */
  forward?(body: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<Response>
  /**
   * Set when this provider stands in for the one the Model names (the mock, for a model without an API key in
   * `ark dev`): why, in words for the Model's status.
   */
  readonly standIn?: string
  /**
   * Finds this Model's secrets (key, Secret-backed values, URL credentials) in any form an upstream may echo
   * them; set by providerFactory, which already applies it to what `complete` and `probe` return or throw.
   * What `forward` returns is the caller's to redact (gateway/openai/direct.ts), since it is never parsed.
   */
  readonly redactor?: Redactor
  /** Called when the provider is dropped (its Model or a Secret changed): its secrets are forgotten. */
  dispose?(): void
}

/**
 * Why a provider call failed, with the upstream's HTTP status when there was one. The message never holds a
 * credential: providers build it through `redact`.
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError'
  /** The upstream's HTTP status; absent for connection failures and timeouts. */
  readonly status: number | undefined
  /** A machine-readable reason: the upstream's error code or type, or ark's (`timeout`, `connection`, ...). */
  readonly code: string
  constructor(message: string, options: { status?: number; code: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.status = options.status
    this.code = options.code
  }
}

/** What a provider is built from: the Model resolved to plain values (Secrets already read). */
export interface ProviderConfig {
  readonly provider: ProviderType
  readonly model: string
  readonly baseUrl?: string
  readonly apiKey?: string
  readonly apiVersion?: string
  readonly headers: Readonly<Record<string, string>>
  /**
   * Every value the Model read from a Secret (its key, headers, baseUrl, ...): kept out of everything ark
   * writes, like the key itself.
   */
  readonly secrets?: readonly string[]
  /** The Model's request properties (temperature, max_tokens, ...), as written. */
  readonly properties: Readonly<Record<string, string>>
  /** Per-call timeout, milliseconds (each attempt). */
  readonly timeoutMs?: number
  /** Retries on 408/409/429/5xx and connection errors, with backoff that honours Retry-After. */
  readonly maxRetries?: number
  /** The HTTP client for upstream calls; absent: the global fetch. */
  readonly fetch?: Fetch
}

/** What providers and SDKs call upstream with: the global fetch, or a faster one on Node (gateway/fetch-node.ts). */
export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** Per-attempt timeout and retries when neither the Model nor the gateway's settings give them. */
export const PROVIDER_DEFAULTS = { timeoutMs: 60_000, maxRetries: 2 } as const

export type ProviderFactory = (config: ProviderConfig) => Provider

/**
 * An error message with every credential replaced by `[REDACTED]`: the provider's own secrets in every form
 * (its redactor), and, for keys ark was not given, what looks like one: upstream error messages may echo a
 * key, whole or masked (`sk-proj-****abcd`), and connection errors may name a URL with a password in it.
 */
export function redact(text: string, redactor: Redactor): string {
  return redactor.text(text).replace(KEY_LIKE, '[REDACTED]').replace(URL_USERINFO, '$1[REDACTED]@')
}

const KEY_LIKE = /\b(sk|sk-ant|sk-proj)-[\w*-]{8,}/g
const URL_USERINFO = /(\w+:\/\/)[^\s/@]+@/g
/** Header and query parameter names that carry a credential whatever their value's source. */
const CREDENTIAL_NAME = /auth|key|token|secret|passw|signature|sig$|cookie|credential/i

/**
 * The secret values of a provider config: the API key (from a Secret, inline or the environment), every
 * value read from a Secret, header values whose name says they are credentials (a token written inline is
 * still a token), and the credentials of the base URL. Other inline header values (`X-Team: platform`) are
 * not secrets: redacting them would mangle ordinary words in answers.
 */
export function secretsOf(config: ProviderConfig): string[] {
  const out = [config.apiKey ?? '', ...(config.secrets ?? [])]
  for (const [name, value] of Object.entries(config.headers)) if (CREDENTIAL_NAME.test(name)) out.push(value)
  if (config.baseUrl !== undefined) {
    try {
      const url = new URL(config.baseUrl)
      out.push(decodeURIComponent(url.password), decodeURIComponent(url.username))
      for (const [name, value] of url.searchParams) if (CREDENTIAL_NAME.test(name)) out.push(value)
    } catch {
      // Not a URL: nothing more to hide.
    }
  }
  return out.filter((s) => s !== '')
}

const redactors = new WeakMap<ProviderConfig, Redactor>()

/** The redactor of a provider config, built once per config object (the registry's and the provider's). */
export function redactorOf(config: ProviderConfig): Redactor {
  let r = redactors.get(config)
  if (r === undefined) redactors.set(config, (r = Redactor.of(secretsOf(config))))
  return r
}

/** Why a signal aborted, as an Error: servers abort with strings too, and a string is not a reason to throw. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : new DOMException(String(reason), 'AbortError')
}

/** Waits `ms`, or rejects with the abort reason as soon as `signal` aborts (at once if it has). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal))
      return
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortReason(signal))
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Model properties arrive as strings (they may come from ConfigMaps); numbers, booleans and JSON are turned
 * back into values so `temperature: "0.2"` reaches the API as 0.2.
 */
export function propertyValues(properties: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(properties)) {
    const t = v.trim()
    if (t === 'true' || t === 'false') out[k] = t === 'true'
    else if (t !== '' && Number.isFinite(Number(t))) out[k] = Number(t)
    else if (t.startsWith('{') || t.startsWith('[')) {
      try {
        out[k] = JSON.parse(t) as unknown
      } catch {
        out[k] = v
      }
    } else out[k] = v
  }
  return out
}
