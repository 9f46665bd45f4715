export type { Capabilities, Verdict } from './availability.ts'
export { CAPABILITIES, availabilityOf, findTeamCycle, isConsequential } from './availability.ts'
export { AvailabilityController } from './availability-controller.ts'
export { WorkQueue } from './queue.ts'
export type { ModelProber, ModelProbeOptions, ProbeTarget } from './model-probe.ts'
export { ModelProbeController, REACHABLE } from './model-probe.ts'
export type { ToolModuleChecker, ToolModuleOptions } from './tool-modules.ts'
export { MODULE_LOADED, ToolModuleController } from './tool-modules.ts'
export type { McpDiscovery, McpDiscoveryOptions, McpObservation, McpServerView } from './mcp-discovery.ts'
export { MCP_SERVERS_CONNECTED, McpDiscoveryController, TOOLS_DISCOVERED } from './mcp-discovery.ts'
export type { TokenUsageOptions, TokenUsageSource } from './token-usage.ts'
export { BUDGET_EXCEEDED, TokenUsageController } from './token-usage.ts'
export type { A2ADiscoveryOptions, DiscoveredCard } from './a2a-discovery.ts'
export { A2ADiscoveryController, CARD_DISCOVERED } from './a2a-discovery.ts'
export type { ReconcileResult, Reconciler, Watches, ControllerOptions } from './kit.ts'
export { Controller, ReconcileMetrics } from './kit.ts'
export { setCondition, withCondition } from './conditions.ts'
export type {
  EventSink,
  InvolvedObject,
  ObjectMetadata,
  ObjectWriter,
  QueryControllerOptions,
  QueryRunner,
  TargetOutcome,
  TargetRequest,
} from './query.ts'
export { CLAIMED_BY, QUERY_FINALIZER, QueryController } from './query.ts'
export { FairSlots } from './fair.ts'
export type { RecordedEvent } from './memory-events.ts'
export { MemoryEvents } from './memory-events.ts'
export { recordAvailabilityEvents } from './condition-events.ts'
export type { RejectionSource } from './validity.ts'
export { VALID, ValidityController } from './validity.ts'
export type { PoolControllerOptions } from './pools.ts'
export { PoolController } from './pools.ts'
export type { KedaSettings, PoolSettings, PoolState } from './pool-deployment.ts'
export {
  AGENT_ANNOTATION,
  CONFIG_HASH,
  DEGRADED,
  MANAGED_BY,
  PROGRESSING,
  WORKER_PORT,
  kedaObjects,
  namespaceObjects,
  poolDeployment,
  poolState,
} from './pool-deployment.ts'
