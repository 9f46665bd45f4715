/**
 * Providers: one model behind one interface. The tool loop only ever calls `complete`; each provider maps the
 * OpenAI-shaped conversation to its own API and back. A provider is created once per Model (or per model id,
 * for ArkAgent's `model: gpt-4o`) and reused for every call.
 */
import type { JsonSchema, ProviderType } from '../../controller/api/index.ts'
import type { AssistantMessage, ChatMessage, ToolDefinition, Usage } from './messages.ts'

export interface CompletionRequest {
  readonly messages: readonly ChatMessage[]
  readonly tools: readonly ToolDefinition[]
  /** The agent's outputSchema: the answer must be JSON that matches it. */
  readonly outputSchema?: JsonSchema
  readonly signal: AbortSignal
  /** Called with each piece of answer text as it arrives; providers that cannot stream call it once. */
  readonly onDelta?: (text: string) => void
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter'

export interface Completion {
  readonly message: AssistantMessage
  readonly usage: Usage
  readonly finishReason: FinishReason
}

export interface Provider {
  /** OpenTelemetry `gen_ai.provider.name`. */
  readonly provider: ProviderType
  /** The provider's model id (`gen_ai.request.model`). */
  readonly model: string
  complete(request: CompletionRequest): Promise<Completion>
}

/** What a provider is built from: the Model resolved to plain values (Secrets already read). */
export interface ProviderConfig {
  readonly provider: ProviderType
  readonly model: string
  readonly baseUrl?: string
  readonly apiKey?: string
  readonly apiVersion?: string
  readonly headers: Readonly<Record<string, string>>
  readonly properties: Readonly<Record<string, string>>
}

export type ProviderFactory = (config: ProviderConfig) => Provider
