import { defOf } from './kinds.ts'
import type { AnyResource, Condition, QueryResponse, Status } from './resources.ts'

/**
 * Internal status in the resource's own dialect: what a cluster backend PATCHes to the status subresource
 * and what `ark get -o yaml` shows. Kinds without status (ConfigMap, Secret) give undefined.
 */
export function encodeStatus(resource: AnyResource, status: Status): Record<string, unknown> | undefined {
  return defOf(resource.origin)?.toStatus?.(status, resource)
}

/**
 * The inverse of encodeStatus: a status as a cluster holds it, read back into the internal model (what a
 * gateway reading from a cluster sees). Each dialect renames only the Available condition (to ModelAvailable,
 * Ready, ...); the name is learnt from the dialect's own writer, so the two never disagree. Fields of the wrong
 * type are dropped, not trusted: anyone with access to the status subresource may have written them.
 */
export function decodeStatus(resource: AnyResource, raw: unknown): Status | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const s = raw as Record<string, unknown>
  const available = availableName(resource)
  const conditions: Condition[] = []
  if (Array.isArray(s.conditions)) {
    for (const c of s.conditions as unknown[]) {
      if (typeof c !== 'object' || c === null) continue
      const { type, status, reason, message, lastTransitionTime, observedGeneration } = c as Record<
        string,
        unknown
      >
      if (typeof type !== 'string' || (status !== 'True' && status !== 'False' && status !== 'Unknown'))
        continue
      conditions.push({
        type: type === available ? 'Available' : type,
        status,
        reason: typeof reason === 'string' ? reason : '',
        message: typeof message === 'string' ? message : '',
        lastTransitionTime: typeof lastTransitionTime === 'string' ? lastTransitionTime : '',
        ...(typeof observedGeneration === 'number' ? { observedGeneration } : {}),
      })
    }
  }
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined)
  const out: { -readonly [K in keyof Status]: Status[K] } = { conditions }
  const replicas = num(s.replicas)
  if (replicas !== undefined) out.replicas = replicas
  const readyReplicas = num(s.readyReplicas)
  if (readyReplicas !== undefined) out.readyReplicas = readyReplicas
  for (const k of ['phase', 'duration', 'resolvedAddress', 'message'] as const) {
    const v = str(s[k])
    if (v !== undefined) out[k] = v
  }
  const toolCount = num(s.toolCount)
  if (toolCount !== undefined) out.toolCount = toolCount
  if (Array.isArray(s.tools))
    out.tools = (s.tools as unknown[]).filter((t): t is string => typeof t === 'string')
  const usage: unknown = s.tokenUsage
  if (typeof usage === 'object' && usage !== null) {
    out.tokenUsage = {
      promptTokens: num((usage as Record<string, unknown>).promptTokens) ?? 0,
      completionTokens: num((usage as Record<string, unknown>).completionTokens) ?? 0,
      totalTokens: num((usage as Record<string, unknown>).totalTokens) ?? 0,
    }
  }
  const daily: unknown = s.dailyTokenUsage
  if (typeof daily === 'object' && daily !== null) {
    const d = daily as Record<string, unknown>
    const date = str(d.date)
    const totalTokens = num(d.totalTokens)
    const limit = num(d.limit)
    if (date !== undefined && totalTokens !== undefined && limit !== undefined)
      out.dailyTokenUsage = { date, totalTokens, limit }
  }
  if (Array.isArray(s.responses)) {
    out.responses = (s.responses as unknown[]).flatMap((r): QueryResponse[] => {
      if (typeof r !== 'object' || r === null) return []
      const { target, content, raw: rawText, phase } = r as Record<string, unknown>
      const t = target as { type?: unknown; name?: unknown } | undefined
      if (typeof t?.type !== 'string' || typeof t.name !== 'string') return []
      return [
        {
          target: { type: t.type as QueryResponse['target']['type'], name: t.name },
          content: typeof content === 'string' ? content : '',
          ...(typeof rawText === 'string' ? { raw: rawText } : {}),
          phase: phase === 'error' ? 'error' : 'done',
        },
      ]
    })
  }
  return out
}

const AVAILABLE_NAMES = new Map<string, string | undefined>()

/** What the resource's dialect calls the Available condition, read off its own status writer. */
function availableName(resource: AnyResource): string | undefined {
  const id = `${resource.origin.apiVersion}/${resource.origin.kind}`
  if (AVAILABLE_NAMES.has(id)) return AVAILABLE_NAMES.get(id)
  const probe: Status = {
    conditions: [{ type: 'Available', status: 'True', reason: '', message: '', lastTransitionTime: '' }],
  }
  const written = encodeStatus(resource, probe)?.conditions
  const name = Array.isArray(written) ? (written[0] as { type?: string } | undefined)?.type : undefined
  AVAILABLE_NAMES.set(id, name)
  return name
}
