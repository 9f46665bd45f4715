import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { AnyResource } from '../api/index.ts'
import { decodeDocument } from '../api/index.ts'
import type { ResourceView, StoreEvent, StoreListener } from '../store/index.ts'
import { Catalog } from '../store/index.ts'
import { Controller, ReconcileMetrics } from './kit.ts'

/** A hand-fed view: tests push store events and see what the controller reconciles. */
function view(resources: AnyResource[]) {
  const map = new Map(resources.map((r) => [r.key, r]))
  const listeners = new Set<StoreListener>()
  const v: ResourceView = {
    get: (k) => map.get(k),
    list: () => map.values(),
    problems: () => [],
    subscribe: (l) => {
      listeners.add(l)
      return () => listeners.delete(l)
    },
    status: () => undefined,
    dialectStatus: () => undefined,
  }
  const emit = (events: StoreEvent[]) => {
    for (const l of listeners) l(events)
  }
  return { v, emit, map }
}

function resource(yaml: object): AnyResource {
  const d = decodeDocument({ value: yaml }, 'default')
  const r = d.resources[0]
  if (r === undefined) throw new Error(JSON.stringify(d.problems))
  return r
}

const secret = resource({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'k' },
  stringData: { key: 'x' },
})
const model = resource({
  apiVersion: 'ark.mckinsey.com/v1alpha1',
  kind: 'Model',
  metadata: { name: 'm' },
  spec: {
    provider: 'openai',
    model: { value: 'gpt' },
    config: { openai: { apiKey: { valueFrom: { secretKeyRef: { name: 'k', key: 'key' } } } } },
  },
})

describe('Controller (reconcile kit)', () => {
  it('reconciles what it is for, and the dependents of a changed resource', async () => {
    const { v, emit } = view([secret, model])
    const catalog = new Catalog(v)
    const seen: string[] = []
    const c = new Controller(
      't',
      catalog,
      (key) => {
        seen.push(key)
        return Promise.resolve(undefined)
      },
      { kinds: new Set(['Model']) },
    )
    await c.start()
    expect(seen).toEqual(['Model/default/m'])
    emit([{ type: 'modified', resource: secret, previous: secret }])
    await c.idle()
    expect(seen).toEqual(['Model/default/m', 'Model/default/m'])
    // Status changes do not trigger unless asked for: a reconciler's own writes would loop.
    emit([{ type: 'status', resource: model, status: { conditions: [] } }])
    await c.idle()
    expect(seen).toHaveLength(2)
    c.close()
  })

  it('requeues errors with backoff and requeueAfter after its delay, and counts both', async () => {
    const { v } = view([model])
    const registry = new Registry()
    const metrics = new ReconcileMetrics(registry)
    let calls = 0
    const errors: string[] = []
    const c = new Controller(
      't',
      new Catalog(v),
      () => {
        calls++
        if (calls <= 2) return Promise.reject(new Error(`boom ${String(calls)}`))
        if (calls === 3) return Promise.resolve({ requeueAfterMs: 20 })
        return Promise.resolve(undefined)
      },
      { kinds: 'all' },
      { metrics, onError: (_k, e) => errors.push(String(e)), baseDelayMs: 5 },
    )
    await c.start()
    await new Promise((r) => setTimeout(r, 150))
    await c.idle()
    expect(calls).toBe(4)
    expect(errors).toEqual(['Error: boom 1', 'Error: boom 2'])
    const text = await registry.metrics()
    expect(text).toContain('ark_controller_reconcile_total{controller="t",result="error"} 2')
    expect(text).toContain('ark_controller_reconcile_total{controller="t",result="requeue_after"} 1')
    expect(text).toContain('ark_controller_reconcile_total{controller="t",result="success"} 1')
    expect(text).toContain('ark_controller_reconcile_errors_total{controller="t"} 2')
    c.close()
  })
})
