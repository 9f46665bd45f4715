/**
 * The cluster store against a real kube-apiserver (../shared/kube): resources listed and watched, status
 * written back per condition in each dialect, conflicts re-read, and the watch recovering from an API server
 * restart.
 */
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { KubeServer } from '../../test/kube.ts'
import { restartApiServer, startKube } from '../../test/kube.ts'
import { KubeClient } from '../kube/client.ts'
import { startReconcilers } from '../index.ts'
import type { Reconcilers } from '../index.ts'
import { CAPABILITIES } from '../reconcile/index.ts'
import { Catalog } from './catalog.ts'
import { KubeStore } from './kube-store.ts'
import type { StoreEvent } from './store.ts'

let kube: KubeServer
let client: KubeClient
const cleanups: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  kube = await startKube()
  await kube.installCrds()
  client = await KubeClient.fromKubeConfig(kube.config())
}, 120_000)

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

afterAll(async () => {
  client.close()
  await kube.stop()
})

async function examplesIn(ns: string): Promise<string> {
  const dir = join(import.meta.dirname, '../../examples')
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))
  return texts.join('\n---\n').replaceAll('namespace: default', `namespace: ${ns}`)
}

async function open(ns: string, options: { reconcile?: boolean } = {}) {
  const store = new KubeStore(client, { namespaces: [ns], defaultNamespace: ns })
  await store.start()
  const catalog = new Catalog(store, { defaultNamespace: ns })
  let reconcilers: Reconcilers | undefined
  if (options.reconcile !== false) {
    reconcilers = await startReconcilers(catalog, store, {
      capabilities: { ...CAPABILITIES, providers: new Set(['openai', 'mock']) },
    })
  }
  cleanups.push(async () => {
    reconcilers?.close()
    catalog.close()
    await store.close()
  })
  return { store, catalog, reconcilers }
}

const condition = async (ns: string, resource: string, type: string) =>
  (
    await kube.kubectl([
      'get',
      resource,
      '-n',
      ns,
      '-o',
      `jsonpath={.status.conditions[?(@.type=="${type}")].status} {.status.conditions[?(@.type=="${type}")].reason}`,
    ])
  ).trim()

describe('KubeStore on a real API server', () => {
  it('loads both dialects and writes each resource Available condition back in its own dialect', async () => {
    const ns = await kube.namespace('load')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: await examplesIn(ns) })
    const { store } = await open(ns)
    expect([...store.list()].some((r) => r.key === `Agent/${ns}/support-agent`)).toBe(true)
    await vi.waitFor(
      async () =>
        expect(await condition(ns, 'agent/support-agent', 'Available')).toBe('True AllDependenciesReady'),
      {
        timeout: 10_000,
        interval: 100,
      },
    )
    // ArkAgents write Available too, with observedGeneration at the top as ark-operator does.
    const arkagents = JSON.parse(await kube.kubectl(['get', 'arkagents', '-n', ns, '-o', 'json'])) as {
      items: {
        metadata: { generation: number }
        status?: { observedGeneration?: number; conditions?: { type: string }[] }
      }[]
    }
    expect(arkagents.items.length).toBeGreaterThan(0)
    await vi.waitFor(
      async () => {
        const list = JSON.parse(
          await kube.kubectl(['get', 'arkagents', '-n', ns, '-o', 'json']),
        ) as typeof arkagents
        for (const a of list.items) {
          expect(a.status?.conditions?.map((c) => c.type)).toContain('Available')
          expect(a.status?.observedGeneration).toBe(a.metadata.generation)
        }
      },
      { timeout: 10_000, interval: 100 },
    )
    // Models call the condition ModelAvailable.
    expect(await condition(ns, 'model/default', 'ModelAvailable')).toMatch(/^True /)
  })

  it('a missing Model created later makes its Agent Available; deleting it takes it away again', async () => {
    const ns = await kube.namespace('later')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: waiting }
spec: { prompt: hi, modelRef: { name: late } }
`,
    })
    await open(ns)
    await vi.waitFor(
      async () => expect(await condition(ns, 'agent/waiting', 'Available')).toBe('False ModelNotFound'),
      {
        timeout: 10_000,
        interval: 100,
      },
    )
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: late }
spec: { provider: mock, model: { value: mock } }
`,
    })
    await vi.waitFor(
      async () => expect(await condition(ns, 'agent/waiting', 'Available')).toBe('True AllDependenciesReady'),
      {
        timeout: 10_000,
        interval: 100,
      },
    )
    await kube.kubectl(['delete', 'model', 'late', '-n', ns])
    await vi.waitFor(
      async () => expect(await condition(ns, 'agent/waiting', 'Available')).toBe('False ModelNotFound'),
      {
        timeout: 10_000,
        interval: 100,
      },
    )
  })

  it('a status write is a status event, never a modified resource (prepared agents survive it)', async () => {
    const ns = await kube.namespace('pin')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: await examplesIn(ns) })
    const { store, reconcilers } = await open(ns)
    await reconcilers?.settled()
    const agent = store.get(`Agent/${ns}/support-agent`)
    const events: StoreEvent[] = []
    store.subscribe((batch) => events.push(...batch))
    // Another writer's status change, through the API server.
    await kube.kubectl([
      'patch',
      'agent',
      'support-agent',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"conditions":[{"type":"Available","status":"True","reason":"AllDependenciesReady","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"},{"type":"Foreign","status":"True","reason":"Other","message":"theirs","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}',
    ])
    await vi.waitFor(
      () =>
        expect(
          events.some((e) => e.type === 'status' && e.resource.key === `Agent/${ns}/support-agent`),
        ).toBe(true),
      {
        timeout: 10_000,
        interval: 50,
      },
    )
    expect(events.filter((e) => e.type === 'modified')).toEqual([])
    expect(store.get(`Agent/${ns}/support-agent`)).toBe(agent)
    // A spec change is a modification.
    await kube.kubectl([
      'patch',
      'agent',
      'support-agent',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"description":"changed"}}',
    ])
    await vi.waitFor(() => expect(events.some((e) => e.type === 'modified')).toBe(true), {
      timeout: 10_000,
      interval: 50,
    })
    expect(store.get(`Agent/${ns}/support-agent`)).not.toBe(agent)
    // Our availability writer kept the foreign condition.
    await reconcilers?.settled()
    expect(await condition(ns, 'agent/support-agent', 'Foreign')).toBe('True Other')
  })

  it('a write computed from a stale resourceVersion re-reads, and keeps the other writer\u2019s condition', async () => {
    const ns = await kube.namespace('conflict')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: m }
spec: { provider: mock, model: { value: mock } }
`,
    })
    const { store } = await open(ns, { reconcile: false })
    const key = `Model/${ns}/m`
    // Another writer moves the object on; this store, its watch stopped, cannot have seen it when it writes.
    await store.close()
    const stale = store.objectOf(key)?.metadata?.resourceVersion
    await kube.kubectl([
      'patch',
      'model',
      'm',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"conditions":[{"type":"Foreign","status":"True","reason":"Theirs","message":"theirs","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}',
    ])
    expect(store.objectOf(key)?.metadata?.resourceVersion).toBe(stale)
    let calls = 0
    await store.updateStatus(key, (current) => {
      calls++
      return {
        ...current,
        conditions: [
          ...(current?.conditions ?? []).filter((c) => c.type !== 'Mine'),
          {
            type: 'Mine',
            status: 'True',
            reason: 'Ours',
            message: 'ours',
            lastTransitionTime: new Date().toISOString(),
          },
        ],
      }
    })
    expect(calls).toBeGreaterThanOrEqual(2)
    expect(await condition(ns, 'model/m', 'Foreign')).toBe('True Theirs')
    expect(await condition(ns, 'model/m', 'Mine')).toBe('True Ours')
  })

  it('follows changes again after its API server restarts mid-watch', async () => {
    const ns = await kube.namespace('restart')
    const errors: unknown[] = []
    const store = new KubeStore(client, {
      namespaces: [ns],
      defaultNamespace: ns,
      onError: (_p, e) => errors.push(e),
    })
    await store.start()
    cleanups.push(() => store.close())
    await restartApiServer(kube)
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `apiVersion: v1
kind: ConfigMap
metadata: { name: after-restart }
data: { a: b }
`,
    })
    await vi.waitFor(() => expect(store.get(`ConfigMap/${ns}/after-restart`)).toBeDefined(), {
      timeout: 40_000,
      interval: 100,
    })
  }, 90_000)
})
