/**
 * `ark query --kubeconfig <file> <target> "<input>"`: a Query on a cluster. It creates the Query resource
 * (ark.mckinsey.com/v1alpha1, `generateName: ark-query-`), waits for `ark controller` to take it to a phase
 * of its end (done, error, canceled), and prints it as `ark query` prints a local one, with the Events the
 * controller recorded on it. The Query stays on the cluster (its ttl removes it), so `kubectl describe` can
 * read it again. Exit status: 0 done, 1 anything else (the Query named, so it can be looked at).
 */
import type * as K8s from '@kubernetes/client-node'
import type { QueryTarget } from '../controller/api/index.ts'
import type { DescribedEvent } from './query.ts'
import { describeQuery, eventLine } from './query.ts'

export interface ClusterQueryOptions {
  /** A kubeconfig file; absent: the default (KUBECONFIG, ~/.kube/config, or in-cluster). */
  readonly kubeconfig?: string
  readonly namespace: string
  readonly target: QueryTarget
  readonly input: string
  readonly parameters: Readonly<Record<string, string>>
  readonly watch: boolean
  readonly timeoutSeconds: number
  readonly out: (text: string) => void
}

const GROUP = 'ark.mckinsey.com'
const VERSION = 'v1alpha1'
const ENDED = new Set(['done', 'error', 'canceled'])

interface QueryObject {
  metadata?: { name?: string; creationTimestamp?: string }
  status?: {
    phase?: string
    duration?: string
    conditions?: { type: string; status: string; reason: string; message: string }[]
    responses?: { content: string; phase: string }[]
    tokenUsage?: { promptTokens: number; completionTokens: number; totalTokens: number }
  }
}

export async function queryOnCluster(options: ClusterQueryOptions): Promise<number> {
  const k8s = await import('@kubernetes/client-node')
  const kc = new k8s.KubeConfig()
  if (options.kubeconfig === undefined) kc.loadFromDefault()
  else kc.loadFromFile(options.kubeconfig)
  const custom = kc.makeApiClient(k8s.CustomObjectsApi)
  const core = kc.makeApiClient(k8s.CoreV1Api)
  const { namespace } = options
  const created = (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: 'queries',
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Query',
      metadata: { generateName: 'ark-query-' },
      spec: {
        input: options.input,
        targets: [{ type: options.target.type, name: options.target.name }],
        ...(Object.keys(options.parameters).length === 0
          ? {}
          : { parameters: Object.entries(options.parameters).map(([name, value]) => ({ name, value })) }),
      },
    },
  })) as QueryObject
  const name = created.metadata?.name ?? ''
  const started = performance.now()
  const deadline = Date.now() + options.timeoutSeconds * 1000
  const printed = new Set<string>()
  let query: QueryObject
  let events: DescribedEvent[] = []
  for (;;) {
    query = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'queries',
      name,
    })) as QueryObject
    if (options.watch || ENDED.has(query.status?.phase ?? '')) {
      events = await eventsOf(core, namespace, name, started)
      if (options.watch)
        for (const e of events) {
          const key = `${e.reason}/${e.message}/${String(e.at)}`
          if (printed.has(key)) continue
          printed.add(key)
          options.out(eventLine(e))
        }
    }
    if (ENDED.has(query.status?.phase ?? '') || Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  const status = query.status ?? {}
  const phase = status.phase ?? 'pending'
  const ended = ENDED.has(phase)
  const failed = status.conditions?.find((c) => c.status === 'False' || c.type === 'Failed')
  const response = status.responses?.find((r) => r.phase === 'done')?.content
  const lines: [string, string][] = [
    ['Name', `${namespace}/${name}`],
    ['Target', `${options.target.type}/${options.target.name}`],
    ['Input', options.input],
    [
      'Phase',
      ended ? phase : `${phase} (still running after ${String(options.timeoutSeconds)} s; it goes on)`,
    ],
  ]
  if (status.duration !== undefined) lines.push(['Duration', status.duration])
  if (phase === 'error' && failed !== undefined)
    lines.push(['Reason', failed.reason], ['Message', failed.message])
  options.out(
    describeQuery(lines, status.tokenUsage, phase === 'done' ? (response ?? '') : undefined, events),
  )
  return phase === 'done' ? 0 : 1
}

/** The Events recorded on the Query, oldest first, timed from when this command started. */
async function eventsOf(
  core: K8s.CoreV1Api,
  namespace: string,
  name: string,
  started: number,
): Promise<DescribedEvent[]> {
  const list = await core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=Query,involvedObject.name=${name}`,
  })
  const origin = Date.now() - (performance.now() - started)
  return list.items
    .map((e) => {
      const when = e.eventTime ?? e.lastTimestamp ?? e.firstTimestamp
      const at = when === undefined ? 0 : new Date(when).getTime() - origin
      return {
        type: e.type === 'Warning' ? ('Warning' as const) : ('Normal' as const),
        reason: e.reason ?? '',
        message: e.message ?? '',
        at: Math.max(0, at),
      }
    })
    .sort((a, b) => a.at - b.at)
}
