/**
 * gateway: the data plane. A Hono app (OpenAI-compatible routes, metrics, health), the agent runtime (tool
 * loop, providers, built-in tools), the task queue with its pools (in-process, or on Redis Streams with
 * pool workers: createWorker). `serve` picks the runtime's adapter (serve-node.ts or serve-deno.ts) and
 * loads only that one.
 */
export type { Gateway, GatewayOptions } from './gateway.ts'
export { DEFAULTS, createGateway } from './gateway.ts'
export type { ProviderSettings } from './runtime/providers/registry.ts'
export { PROVIDERS, PROVIDER_DEFAULTS, providerFactory } from './runtime/providers/registry.ts'
export type { Logger } from './log.ts'
export { createLogger, silentLogger } from './log.ts'
export type { AgentEvent, Outcome, ToolOutcome } from './runtime/events.ts'
export type { ChatMessage, ToolDefinition, Usage } from './runtime/messages.ts'
export type {
  Completion,
  CompletionRequest,
  Provider,
  ProviderConfig,
  ProviderFactory,
  Fetch,
} from './runtime/provider.ts'
export { ProviderError, sleep } from './runtime/provider.ts'
export type { Task, TaskResult } from './runtime/task.ts'
export type { BudgetOptions, RedisBudgetOptions, TokenBudget } from './runtime/budget.ts'
export {
  BudgetUnavailableError,
  MemoryBudget,
  RedisBudget,
  nextUtcMidnight,
  secondsUntil,
  secondsUntilReset,
  utcDay,
} from './runtime/budget.ts'
export type { BuiltinTool, ToolResult } from './runtime/tools/tool.ts'
export { BUILTIN_TOOLS } from './runtime/tools/builtin.ts'
export type { PoolLimits, PoolStats, TaskQueue } from './pool/queue.ts'
export { QueueFullError, QueueUnavailableError } from './pool/queue.ts'
export type { RedisSettings, RuntimeSettings } from './assemble.ts'
export type { Worker, WorkerOptions } from './worker.ts'
export { DEFAULT_WORKER_CONCURRENCY, createWorker } from './worker.ts'
export type { PoolStatus } from './pool/workers.ts'
export { PoolWorkers } from './pool/workers.ts'
export { WorkerMetrics } from './pool/worker-metrics.ts'
export { redactedUrl } from './log.ts'
/** A pool's Redis stream: what KEDA's redis-streams trigger reads the length of. */
export { keys as redisKeys } from './pool/redis-streams.ts'
import type { discoverAgentCard as DiscoverAgentCardFn } from './runtime/providers/a2a.ts'
export { mcpDiscovery } from './runtime/mcp/discovery.ts'
type DiscoverAgentCard = typeof DiscoverAgentCardFn

/** A2A discovery's card fetch, with the SDK's client imported on first use (a2a-discovery.ts in controller/). */
export const discoverAgentCard: DiscoverAgentCard = async (address, headers, signal) =>
  (await import('./runtime/providers/a2a.ts')).discoverAgentCard(address, headers, signal)
export type { McpClients } from './runtime/mcp/client.ts'
export type { AgentRuntime, ProbeVerdict } from './runtime/agent-runtime.ts'
export type { PreparedAgent } from './runtime/prepare.ts'
export { runLoop } from './runtime/loop.ts'
export type { LoopAgent, LoopInput, LoopResult } from './runtime/loop.ts'
export type { ServeHandle, ServeOptions, ServeTimeouts } from './serve.ts'
export { SERVE_DEFAULTS, serve } from './serve.ts'
export type { AllowedHosts } from './http/guards.ts'
export { defaultAllowedHosts, isLoopbackHost } from './http/guards.ts'
export type { StreamLimits } from './http/response-stream.ts'
export { STREAM_DEFAULTS } from './http/response-stream.ts'

export { upstreamFetch } from './upstream-fetch.ts'
export type { Tracing, TracingConfig } from './trace/tracing.ts'
export { startTracing, tracingConfig } from './trace/tracing.ts'
export type { Admitted, Checked as AdmissionChecked, Refusal, Run, SubmitRequest } from './admission.ts'
export { Admission, failureOf } from './admission.ts'
export { succeeded } from './runtime/task.ts'
// Query inputs are OpenAI chat messages: the controller's runner checks them as the chat route does.
export { checkChatRequest } from './openai/request.ts'
export type { ApiKeyEntry } from './auth/keys.ts'
export { KeyRing, digestOf, isKeyId, newKey, parseKeysFile } from './auth/keys.ts'
export type { JwtOptions } from './auth/jwt.ts'
export { JwtVerifier } from './auth/jwt.ts'
export type { KeySource } from './auth/sources.ts'
export { followKeysFile, followKeysSecret } from './auth/sources.ts'
