/**
 * What the `ark controller` end-to-end files share: a controller per namespace on a real kube-apiserver,
 * manifests applied with kubectl, and Queries read back with kubectl until they reach a phase.
 */
import { expect, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { KubeServer } from './kube.ts'

export interface QueryObject {
  metadata: { finalizers?: string[] }
  status?: {
    phase?: string
    duration?: string
    conditions?: { type: string; status: string; reason: string; message: string }[]
    responses?: { content: string; raw?: string; phase: string; target: { type: string; name: string } }[]
    tokenUsage?: { promptTokens: number; completionTokens: number; totalTokens: number }
  }
}

/** A Query of seed 000's question to one agent; `extra` is more of its spec, indented as such. */
export const query = (name: string, target: string, extra = '') => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: ${name} }
spec:
  input: How do I reset my password?
  targets: [{ type: agent, name: ${target} }]
${extra}`

export interface ControllerKit {
  /** The processes started, stopped by `stopAll` (after each test). */
  readonly processes: ArkProcess[]
  /**
   * A controller for one namespace. `failover`: short leader-election durations (a 3 s Lease), so that a
   * takeover is quick; otherwise a 15 s Lease, so that a slow Lease renewal on a busy machine (test files and
   * their servers share two cores) does not make a lone controller step down mid-Query.
   */
  controller(
    ns: string,
    extra?: readonly string[],
    options?: { readonly failover?: boolean },
  ): Promise<ArkProcess>
  apply(ns: string, yaml: string): Promise<string>
  getQuery(ns: string, name: string): Promise<QueryObject | undefined>
  /** Waits for the Query to reach `phase`; a Query that ends otherwise fails with its status. */
  phaseOf(ns: string, name: string, phase: string, timeout?: number): Promise<QueryObject>
  stopAll(): Promise<void>
}

export function controllerKit(kube: KubeServer): ControllerKit {
  const processes: ArkProcess[] = []
  const getQuery = async (ns: string, name: string): Promise<QueryObject | undefined> => {
    const text = await kube.kubectl(['get', 'query', name, '-n', ns, '-o', 'json', '--ignore-not-found'])
    return text.trim() === '' ? undefined : (JSON.parse(text) as QueryObject)
  }
  return {
    processes,
    async controller(ns, extra = [], options = {}) {
      const [lease, renew, retry] = options.failover === true ? ['3', '2', '1'] : ['15', '10', '2']
      const p = await startArk(
        [
          'controller',
          '--kubeconfig',
          kube.kubeconfig,
          '--namespaces',
          ns,
          '--lease-namespace',
          ns,
          '--port',
          '0',
          '--probe-interval',
          '0',
          '--lease-duration',
          lease,
          '--renew-deadline',
          renew,
          '--retry-period',
          retry,
          ...extra,
        ],
        { ready: 'synced' },
      )
      processes.push(p)
      return p
    },
    apply: (ns, yaml) => kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: yaml }),
    getQuery,
    async phaseOf(ns, name, phase, timeout = 20_000) {
      let found: QueryObject | undefined
      await vi.waitFor(
        async () => {
          found = await getQuery(ns, name)
          // The status in the message: a Query that ended otherwise says why.
          expect(found?.status?.phase, JSON.stringify(found?.status)).toBe(phase)
        },
        { timeout, interval: 200 },
      )
      return found as QueryObject
    },
    async stopAll() {
      await Promise.all(processes.splice(0).map((p) => p.stop()))
    },
  }
}
