/**
 * sandbox: Wasm tools on Extism, isolated from the gateway's event loop on plugin threads, under limits ark
 * enforces itself (time, memory, input and output size, hosts). Imports nothing of ark's.
 */
export type { PluginLimits, PluginSpec, SandboxOptions, SandboxedPlugin } from './sandbox.ts'
export { DEFAULT_PLUGIN_LIMITS, Sandbox } from './sandbox.ts'
export type { ModuleSource } from './modules.ts'
export { sha256 } from './modules.ts'
export type { FailureKind } from './protocol.ts'
export { SandboxError } from './pool.ts'
export { ModuleRejected } from './wasm-binary.ts'
export type { NetPolicyOptions } from './net-policy.ts'
export { NetDenied, NetPolicy } from './net-policy.ts'
