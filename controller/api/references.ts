/**
 * What a resource points at, dialect-neutral. The catalog indexes these backwards (who depends on X) so that a
 * change to X re-reconciles exactly its dependents; the availability reconciler checks each one resolves.
 */
import type { AnyResource, Kind, NamedValue, ObjectRef, ValueSource } from './resources.ts'

export interface Reference {
  /** `Service` for a serviceRef: not a kind ark stores, but a dependency all the same. */
  readonly kind: Kind | 'Service'
  readonly ref: ObjectRef
  /** Field path in the internal model's terms, for messages (`model`, `tools[2]`, `parameters.api_key`). */
  readonly path: string
  /** ConfigMap/Secret key, when the reference reads one value. */
  readonly key?: string
  readonly optional?: boolean
  /** The key is in the ConfigMap's binaryData (a Wasm module), not its data. */
  readonly binary?: boolean
}

/** `binary`: the key is read from a ConfigMap's binaryData (a Wasm module). */
function fromValue(
  ns: string,
  source: ValueSource | undefined,
  path: string,
  out: Reference[],
  binary = false,
): void {
  if (source === undefined) return
  if ('configMapKeyRef' in source || 'secretKeyRef' in source) {
    const isSecret = 'secretKeyRef' in source
    const r = isSecret ? source.secretKeyRef : source.configMapKeyRef
    out.push({
      kind: isSecret ? 'Secret' : 'ConfigMap',
      ref: { namespace: ns, name: r.name },
      path,
      key: r.key,
      optional: r.optional === true,
      ...(binary ? { binary } : {}),
    })
  } else if ('serviceRef' in source) {
    const r = source.serviceRef
    out.push({ kind: 'Service', ref: { namespace: r.namespace ?? ns, name: r.name }, path })
  }
}

function fromValues(ns: string, values: readonly NamedValue[], path: string, out: Reference[]): void {
  for (const v of values) fromValue(ns, v.source, `${path}.${v.name}`, out)
}

export function referencesOf(r: AnyResource): Reference[] {
  const out: Reference[] = []
  const ns = r.ref.namespace
  switch (r.kind) {
    case 'Agent': {
      const s = r.spec
      if (s.model !== undefined && 'ref' in s.model)
        out.push({ kind: 'Model', ref: s.model.ref, path: 'model' })
      if (s.executionEngine !== undefined && s.executionEngine.name !== 'a2a') {
        out.push({ kind: 'ExecutionEngine', ref: s.executionEngine, path: 'executionEngine' })
      }
      // An agent an A2AServer made runs on that server: it is available while the server is.
      if (s.executionEngine?.name === 'a2a' && s.a2a?.serverName !== undefined) {
        out.push({
          kind: 'A2AServer',
          ref: { namespace: ns, name: s.a2a.serverName },
          path: "metadata.annotations['ark.mckinsey.com/a2a-server-name']",
        })
      }
      if (s.prompt !== undefined && !('inline' in s.prompt)) fromValue(ns, s.prompt, 'prompt', out)
      fromValues(ns, s.parameters, 'parameters', out)
      s.tools.forEach((t, i) => {
        if (t.kind === 'ref') {
          out.push({ kind: 'Tool', ref: t.ref, path: `tools[${i}]` })
          fromValues(ns, t.fixed, `tools[${i}]`, out)
        }
        if (t.kind === 'inline' && t.tool.type === 'http')
          fromValues(ns, t.tool.http.headers, `tools[${i}].headers`, out)
      })
      if (s.memory !== undefined) out.push({ kind: 'Memory', ref: s.memory, path: 'memory' })
      if (s.settings !== undefined) out.push({ kind: 'Settings', ref: s.settings, path: 'settings' })
      break
    }
    case 'Model': {
      const s = r.spec
      fromValue(ns, s.model, 'model', out)
      fromValue(ns, s.baseUrl, 'baseUrl', out)
      fromValue(ns, s.apiKey, 'apiKey', out)
      fromValue(ns, s.apiVersion, 'apiVersion', out)
      fromValues(ns, s.headers, 'headers', out)
      fromValues(ns, s.properties, 'properties', out)
      for (const [k, v] of Object.entries(s.bedrock ?? {})) {
        if (typeof v === 'object') fromValue(ns, v, `bedrock.${k}`, out)
      }
      break
    }
    case 'Tool': {
      const s = r.spec
      if (s.type === 'http') {
        fromValues(ns, s.http.headers, 'http.headers', out)
        fromValues(ns, s.http.bodyParameters, 'http.bodyParameters', out)
      }
      if (s.type === 'mcp') out.push({ kind: 'MCPServer', ref: s.mcp.server, path: 'mcp.mcpServerRef' })
      if (s.type === 'agent') out.push({ kind: 'Agent', ref: s.agent, path: 'agent' })
      if (s.type === 'team') out.push({ kind: 'Team', ref: s.team, path: 'team' })
      if (s.type === 'wasm') {
        const m = s.wasm.module
        if ('configMapKeyRef' in m) fromValue(ns, m, 'wasm.module', out, true)
        fromValues(ns, s.wasm.config, 'wasm.config', out)
      }
      break
    }
    case 'Team':
      r.spec.members.forEach((m, i) =>
        out.push({
          kind: m.type === 'agent' ? 'Agent' : 'Team',
          ref: m.ref,
          path: `members[${i}] (${m.name})`,
        }),
      )
      if (r.spec.selector?.agent !== undefined) {
        out.push({
          kind: 'Agent',
          ref: { namespace: ns, name: r.spec.selector.agent },
          path: 'selector.agent',
        })
      }
      break
    case 'Memory':
      fromValue(ns, r.spec.address, 'address', out)
      fromValues(ns, r.spec.headers, 'headers', out)
      if (r.spec.redis !== undefined) {
        out.push({
          kind: 'Secret',
          ref: { namespace: ns, name: r.spec.redis.secretName },
          path: 'redis.secretRef',
          key: 'REDIS_URL',
        })
      }
      if (r.spec.vectorStore?.secretName !== undefined) {
        out.push({
          kind: 'Secret',
          ref: { namespace: ns, name: r.spec.vectorStore.secretName },
          path: 'vectorStore.secretRef',
        })
      }
      break
    case 'Query':
      for (const t of r.spec.targets) {
        const kind = ({ agent: 'Agent', team: 'Team', model: 'Model', tool: 'Tool' } as const)[t.type]
        out.push({ kind, ref: { namespace: ns, name: t.name }, path: `targets.${t.type}/${t.name}` })
      }
      fromValues(ns, r.spec.parameters, 'parameters', out)
      if (r.spec.memory !== undefined) out.push({ kind: 'Memory', ref: r.spec.memory, path: 'memory' })
      break
    case 'MCPServer':
    case 'A2AServer':
      fromValue(ns, r.spec.address, 'address', out)
      fromValues(ns, r.spec.headers, 'headers', out)
      break
    case 'ExecutionEngine':
      fromValue(ns, r.spec.address, 'address', out)
      break
    case 'AgentService':
      out.push({ kind: 'Agent', ref: r.spec.agent, path: 'selector' })
      break
    case 'Evaluation':
      if (r.spec.evaluator !== undefined)
        fromValues(ns, r.spec.evaluator.parameters, 'evaluator.parameters', out)
      break
    case 'Settings':
    case 'ConfigMap':
    case 'Secret':
      break
  }
  return out
}
