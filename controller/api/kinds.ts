/** Every kind ark reads, by `apiVersion` and `kind`. */
import type { KindDef } from './define.ts'
import { apiVersionOf } from './define.ts'
import { Agent } from './ark/v1alpha1/agent.ts'
import { Evaluation } from './ark/v1alpha1/evaluation.ts'
import { MCPServer } from './ark/v1alpha1/mcpserver.ts'
import { Memory } from './ark/v1alpha1/memory.ts'
import { Model } from './ark/v1alpha1/model.ts'
import { Query } from './ark/v1alpha1/query.ts'
import { Team } from './ark/v1alpha1/team.ts'
import { Tool } from './ark/v1alpha1/tool.ts'
import { A2AServer } from './ark/v1prealpha1/a2aserver.ts'
import { ExecutionEngine } from './ark/v1prealpha1/executionengine.ts'
import { ArkAgent } from './arkonis/v1alpha1/arkagent.ts'
import { ArkMemory } from './arkonis/v1alpha1/arkmemory.ts'
import { ArkService } from './arkonis/v1alpha1/arkservice.ts'
import { ArkSettings } from './arkonis/v1alpha1/arksettings.ts'
import { ArkTeam } from './arkonis/v1alpha1/arkteam.ts'
import { ConfigMap } from './core/v1/configmap.ts'
import { Secret } from './core/v1/secret.ts'

// The concrete defs differ in their body type; the registry only needs the common face.
export const KIND_DEFS: readonly KindDef[] = [
  Agent,
  Model,
  Tool,
  Team,
  Memory,
  Query,
  MCPServer,
  Evaluation,
  A2AServer,
  ExecutionEngine,
  ArkAgent,
  ArkService,
  ArkTeam,
  ArkSettings,
  ArkMemory,
  ConfigMap,
  Secret,
] as unknown as readonly KindDef[]

const byId = new Map(KIND_DEFS.map((d) => [`${apiVersionOf(d)}|${d.kind}`, d]))

export function findKind(apiVersion: string, kind: string): KindDef | undefined {
  return byId.get(`${apiVersion}|${kind}`)
}

/** For error messages: which apiVersions serve a kind, or which kinds an apiVersion has. */
export function knownApiVersionsOf(kind: string): string[] {
  return KIND_DEFS.filter((d) => d.kind === kind).map(apiVersionOf)
}

export function knownKindsOf(apiVersion: string): string[] {
  return KIND_DEFS.filter((d) => apiVersionOf(d) === apiVersion).map((d) => d.kind)
}

export function defOf(origin: { apiVersion: string; kind: string }): KindDef | undefined {
  return findKind(origin.apiVersion, origin.kind)
}
