/**
 * Availability, as seed 002 describes it: a resource is Available when everything it depends on resolves.
 * Level-based (controller-runtime style): `availabilityOf` reads the current catalog and says what the
 * condition should be, whatever event caused the call.
 */
import type { AnyResource, ProviderType, ResourceOf, ToolType } from '../api/index.ts'
import { referencesOf } from '../api/index.ts'
import type { Catalog } from '../store/index.ts'
import { REACHABLE } from './model-probe.ts'
import { CARD_DISCOVERED } from './a2a-discovery.ts'
import { TOOLS_DISCOVERED } from './mcp-discovery.ts'
import { MODULE_LOADED } from './tool-modules.ts'

/** What this build of the runtime can execute. Later capabilities (MCP, A2A, sandboxed tools) extend it. */
export interface Capabilities {
  readonly builtinTools: ReadonlySet<string>
  readonly toolTypes: ReadonlySet<ToolType>
  readonly providers: ReadonlySet<ProviderType>
  readonly mcp: boolean
  /** ArkAgent mcpServers given as a command (stdio) can run: `ark dev` only. */
  readonly mcpStdio: boolean
  readonly a2a: boolean
  readonly executionEngines: boolean
  /** Team strategies (sequential, selector, graph, ...) can run. */
  readonly teams: boolean
}

/**
 * What the runtime of this build executes: built-in tools, tools that call another agent, webhook (`http`)
 * and `wasm` tools in the Wasm sandbox, MCP servers' tools (ArkAgent mcpServers, Tool type `mcp`) through
 * the MCP client, on the openai, azure, anthropic and mock providers; agents on remote A2A servers through
 * the A2A client; teams by every strategy (gateway/runtime/team/). External execution engines wait for a
 * client, bedrock for the AWS SDK.
 */
export const CAPABILITIES: Capabilities = {
  // The task tools (seed 003) run in the runtime like the others; ArkAgents have the first two by default.
  builtinTools: new Set([
    'noop',
    'terminate',
    'calculator',
    'submit_subtask',
    'get_subtask_result',
    'delegate',
  ]),
  toolTypes: new Set<ToolType>(['builtin', 'agent', 'http', 'wasm', 'mcp']),
  providers: new Set<ProviderType>(['openai', 'azure', 'anthropic', 'mock']),
  mcp: true,
  mcpStdio: false,
  a2a: true,
  executionEngines: false,
  teams: true,
}

export interface Verdict {
  readonly status: 'True' | 'False'
  readonly reason: string
  readonly message: string
}

interface Failure {
  readonly reason: string
  readonly message: string
}

const READY = 'AllDependenciesReady'
const UNSUPPORTED = 'UnsupportedFeature'

/** The Available condition a resource should have now; undefined for kinds without one. */
export function availabilityOf(
  r: AnyResource,
  catalog: Catalog,
  caps: Capabilities = CAPABILITIES,
): Verdict | undefined {
  let failures: Failure[]
  switch (r.kind) {
    case 'Agent':
      failures = agentFailures(r, catalog, caps)
      break
    case 'Model':
      failures = [...valueFailures(r, catalog)]
      if (!caps.providers.has(r.spec.provider)) {
        failures.push(notYet(`provider ${r.spec.provider} needs its client`))
      }
      failures.push(...probeFailures(r, catalog))
      break
    case 'Tool':
      failures = toolFailures(r, catalog, caps)
      break
    case 'Team':
      failures = teamFailures(r, catalog)
      if (!caps.teams)
        failures.push(notYet('teams need the team strategies (sequential, selector, graph, ...)'))
      break
    case 'MCPServer':
      failures = [
        ...valueFailures(r, catalog),
        ...(caps.mcp ? [] : [notYet('MCP servers need the MCP client')]),
        ...conditionFailures(r, catalog, TOOLS_DISCOVERED),
      ]
      break
    case 'A2AServer':
      failures = [
        ...valueFailures(r, catalog),
        ...(caps.a2a ? [] : [notYet('A2A servers need the A2A client')]),
        ...conditionFailures(r, catalog, CARD_DISCOVERED),
      ]
      break
    case 'ExecutionEngine':
      failures = [
        ...valueFailures(r, catalog),
        ...(caps.executionEngines ? [] : [notYet('external execution engines need an engine client')]),
      ]
      break
    case 'Memory':
      failures = valueFailures(r, catalog)
      // ark serves conversations from in-process, Redis and HTTP memories; vector stores wait for a client.
      if (r.spec.backend === 'vector-store')
        failures.push(notYet('the vector-store memory backend needs a vector store client'))
      break
    case 'AgentService':
      failures = valueFailures(r, catalog)
      break
    case 'Settings':
      failures = []
      break
    case 'Query':
    case 'Evaluation':
    case 'ConfigMap':
    case 'Secret':
      return undefined
  }
  if (failures.length === 0) {
    return { status: 'True', reason: READY, message: `${readableKind(r)} is ready for execution` }
  }
  // The condition carries one reason: the most actionable one. A mistake in the manifests (NotFound,
  // KeyNotFound, cycles) comes before a dependency's own trouble or a feature this version lacks.
  failures.sort((a, b) => rank(a.reason) - rank(b.reason))
  const first = failures[0]
  return {
    status: 'False',
    reason: first?.reason ?? 'Unknown',
    message: failures.map((f) => f.message).join('; '),
  }
}

/** Reasons that are not a mistake in this resource's manifest. */
export function isConsequential(reason: string): boolean {
  return reason === UNSUPPORTED || reason === 'ServiceNotResolvable' || reason.endsWith('NotAvailable')
}

function rank(reason: string): number {
  return isConsequential(reason) ? (reason === UNSUPPORTED ? 2 : 1) : 0
}

function readableKind(r: AnyResource): string {
  return r.kind === 'AgentService' ? 'Service' : r.kind
}

function notYet(what: string): Failure {
  return { reason: UNSUPPORTED, message: `${what}, which this version of ark does not have yet` }
}

/**
 * Every reference of the resource: same namespace only, target exists, and, for references to resources that
 * have availability, target available. ConfigMap/Secret references must hold their key.
 */
function valueFailures(r: AnyResource, catalog: Catalog): Failure[] {
  const out: Failure[] = []
  const ns = r.ref.namespace
  for (const ref of referencesOf(r)) {
    if (ref.ref.namespace !== ns) {
      out.push({
        reason: 'CrossNamespaceReference',
        message: `${ref.path} points to ${ref.kind} ${ref.ref.namespace}/${ref.ref.name}; references must stay in namespace ${ns}`,
      })
      continue
    }
    if (ref.kind === 'Service') {
      const v = catalog.resolveValue(ns, { serviceRef: { name: ref.ref.name } })
      if (!v.ok) out.push({ reason: v.reason, message: `${ref.path}: ${v.message}` })
      continue
    }
    if (ref.kind === 'ConfigMap' || ref.kind === 'Secret') {
      if (ref.binary === true) {
        const cm = catalog.get('ConfigMap', ref.ref)
        if (cm?.spec.binaryData[ref.key ?? ''] === undefined) {
          out.push({
            reason: cm === undefined ? 'ConfigMapNotFound' : 'KeyNotFound',
            message:
              cm === undefined
                ? `${ref.path}: ConfigMap ${ns}/${ref.ref.name} not found`
                : `${ref.path}: ConfigMap ${ns}/${ref.ref.name} has no binaryData key "${ref.key ?? ''}"`,
          })
        }
        continue
      }
      if (ref.key === undefined) {
        if (catalog.get(ref.kind, ref.ref) === undefined) {
          out.push({
            reason: `${ref.kind}NotFound`,
            message: `${ref.path}: ${ref.kind} ${ns}/${ref.ref.name} not found`,
          })
        }
        continue
      }
      const source =
        ref.kind === 'Secret'
          ? {
              secretKeyRef: {
                name: ref.ref.name,
                key: ref.key,
                ...(ref.optional === true ? { optional: true } : {}),
              },
            }
          : {
              configMapKeyRef: {
                name: ref.ref.name,
                key: ref.key,
                ...(ref.optional === true ? { optional: true } : {}),
              },
            }
      const v = catalog.resolveValue(ns, source)
      if (!v.ok) out.push({ reason: v.reason, message: `${ref.path}: ${v.message}` })
      continue
    }
    const target = catalog.get(ref.kind, ref.ref)
    if (target === undefined) {
      out.push({
        reason: `${ref.kind}NotFound`,
        message: `${ref.path}: ${ref.kind} ${ns}/${ref.ref.name} not found`,
      })
      continue
    }
    const available = catalog.available(target.key)
    if (available !== undefined && available.status !== 'True') {
      out.push({
        reason: `${ref.kind}NotAvailable`,
        // The reason only: the full story is on the dependency's own condition, and messages stay bounded.
        message: `${ref.path}: ${ref.kind} ${ns}/${ref.ref.name} is not available (${available.reason})`,
      })
    }
  }
  return out
}

/**
 * A condition another reconciler owns, when it is False: the model probe (model-probe.ts), the module load
 * (tool-modules.ts), MCP discovery (mcp-discovery.ts), A2A discovery (a2a-discovery.ts). Its reason becomes
 * the resource's.
 */
function conditionFailures(r: AnyResource, catalog: Catalog, type: string, prefix = ''): Failure[] {
  const c = catalog.status(r.key)?.conditions.find((x) => x.type === type)
  if (c?.status !== 'False') return []
  return [{ reason: c.reason, message: `${prefix}${c.message}` }]
}

/** The last probe of the resource's model (model-probe.ts), when it failed. */
function probeFailures(r: AnyResource, catalog: Catalog): Failure[] {
  return conditionFailures(r, catalog, REACHABLE, 'the model probe failed: ')
}

function agentFailures(a: ResourceOf<'Agent'>, catalog: Catalog, caps: Capabilities): Failure[] {
  const s = a.spec
  const out = valueFailures(a, catalog)
  const ns = a.ref.namespace
  if (s.model !== undefined && 'id' in s.model && !caps.providers.has(s.model.provider)) {
    out.push(notYet(`model ${s.model.id} needs the ${s.model.provider} provider client`))
  }
  out.push(...probeFailures(a, catalog))
  if (s.executionEngine !== undefined) {
    if (s.executionEngine.name === 'a2a') {
      if (!caps.a2a)
        out.push(notYet(`agent ${a.ref.name} runs on a remote A2A server, which needs the A2A client`))
      else if (s.a2a?.address === undefined && s.a2a?.serverName === undefined)
        out.push({
          reason: 'A2AAddressMissing',
          message: `agent ${a.ref.name} runs on executionEngine a2a but names no A2A server: set the annotation ark.mckinsey.com/a2a-server-address (its URL) or ark.mckinsey.com/a2a-server-name (an A2AServer)`,
        })
    } else if (!caps.executionEngines) {
      out.push(notYet(`executionEngine ${s.executionEngine.name} needs an engine client`))
    }
  }
  s.tools.forEach((t, i) => {
    const at = `tools[${i}]`
    switch (t.kind) {
      case 'builtin':
        if (!caps.builtinTools.has(t.name)) {
          out.push({
            reason: 'ToolNotFound',
            message: `${at}: there is no built-in tool "${t.name}" (built-ins: ${[...caps.builtinTools].join(', ')})`,
          })
        }
        break
      case 'ref': {
        const tool = catalog.get('Tool', t.ref)
        if (tool !== undefined && t.expectType !== undefined && tool.spec.type !== t.expectType) {
          out.push({
            reason: 'ToolNotFound',
            message: `${at}: Tool ${ns}/${t.ref.name} is of type ${tool.spec.type}, not ${t.expectType}`,
          })
        }
        break
      }
      case 'inline':
        if (!caps.toolTypes.has(t.tool.type)) {
          out.push(notYet(`${at}: webhook tool ${t.name} needs the Wasm sandbox`))
        }
        break
      case 'mcpServer':
        if (!caps.mcp) out.push(notYet(`mcpServers: ${t.server.name} needs the MCP client`))
        else if (t.server.transport === 'stdio' && !caps.mcpStdio) {
          out.push({
            reason: UNSUPPORTED,
            message: `mcpServers: ${t.server.name} is a command (stdio), which only ark dev runs; serve it over HTTP here`,
          })
        }
        break
    }
  })
  return out
}

function toolFailures(t: ResourceOf<'Tool'>, catalog: Catalog, caps: Capabilities): Failure[] {
  const out = [...valueFailures(t, catalog), ...conditionFailures(t, catalog, MODULE_LOADED)]
  const s = t.spec
  if (s.type === 'mcp') {
    // The server's own trouble is MCPServerNotAvailable (valueFailures); here, a tool it does not list.
    const server = catalog.get('MCPServer', s.mcp.server)
    const listed = server === undefined ? undefined : catalog.status(server.key)?.tools
    if (listed !== undefined && !listed.includes(s.mcp.toolName)) {
      out.push({
        reason: 'ToolNotFound',
        message: `spec.mcp.toolName: MCPServer ${s.mcp.server.namespace}/${s.mcp.server.name} has no tool "${s.mcp.toolName}" (it lists ${listed.length === 0 ? 'none' : listed.slice(0, 20).join(', ')}${listed.length > 20 ? ', ...' : ''})`,
      })
    }
  }
  if (s.type === 'builtin' && !caps.builtinTools.has(s.builtin.name)) {
    out.push({
      reason: 'ToolNotFound',
      message: `there is no built-in tool "${s.builtin.name}" (built-ins: ${[...caps.builtinTools].join(', ')})`,
    })
  }
  if (!caps.toolTypes.has(s.type)) {
    const why: Record<ToolType, string> = {
      http: 'http tools run in the Wasm sandbox',
      wasm: 'wasm tools need the Wasm sandbox',
      mcp: 'mcp tools need the MCP client',
      agent: 'agent tools need the runtime',
      team: 'team tools need the runtime',
      builtin: 'built-in tools need the runtime',
    }
    out.push(notYet(why[s.type]))
  }
  return out
}

function teamFailures(team: ResourceOf<'Team'>, catalog: Catalog): Failure[] {
  const cycle = findTeamCycle(team, catalog)
  const out: Failure[] = []
  if (cycle !== undefined) {
    out.push({ reason: 'TeamCycle', message: `team members form a cycle: ${cycle.join(' → ')}` })
  }
  // A member team that is unavailable only because of the same cycle would repeat it; keep the cycle message.
  return [
    ...out,
    ...valueFailures(team, catalog).filter((f) => cycle === undefined || f.reason !== 'TeamNotAvailable'),
  ]
}

/** A path of team names from `team` back to itself through `type: team` members, if there is one. */
export function findTeamCycle(team: ResourceOf<'Team'>, catalog: Catalog): string[] | undefined {
  const path: string[] = []
  const onPath = new Set<string>()
  const done = new Set<string>()
  const visit = (t: ResourceOf<'Team'>): string[] | undefined => {
    if (onPath.has(t.key)) return t.key === team.key ? [...path, t.ref.name] : undefined
    if (done.has(t.key)) return undefined
    onPath.add(t.key)
    path.push(t.ref.name)
    for (const m of t.spec.members) {
      if (m.type !== 'team') continue
      const next = catalog.get('Team', m.ref)
      if (next === undefined) continue
      const found = visit(next)
      if (found !== undefined) return found
    }
    path.pop()
    onPath.delete(t.key)
    done.add(t.key)
    return undefined
  }
  return visit(team)
}
