/**
 * The reflector against a real kube-apiserver (../shared/kube): a watch whose resourceVersion the server no
 * longer holds (410 Gone) relists, and the relist tells the consumer what was deleted while it was not
 * watching. A restarted API server's watch cache starts at etcd's current revision, so a reflector that
 * resumes from an older one is answered 410, as it would be after etcd compacted its history.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import type { KubeServer } from '../../test/kube.ts'
import { restartApiServer, startKube } from '../../test/kube.ts'
import { KubeClient } from '../kube/client.ts'
import { KubeError } from '../kube/client.ts'
import type { KubeObject } from '../kube/client.ts'
import { Reflector } from './reflector.ts'

let kube: KubeServer
let client: KubeClient

beforeAll(async () => {
  kube = await startKube()
  client = await KubeClient.connect({ path: kube.kubeconfig })
}, 120_000)

afterAll(async () => {
  client.close()
  await kube.stop()
})

const configMap = (name: string) => `apiVersion: v1
kind: ConfigMap
metadata: { name: ${name} }
data: { a: b }
`

it('relists on 410 Gone, and the relist says what was deleted meanwhile', async () => {
  const ns = await kube.namespace('gone')
  const other = await kube.namespace('elsewhere')
  await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: configMap('before') })

  // What the consumer was told, in order: complete lists, and watch events.
  const told: ({ list: string[] } | { event: string; name: string })[] = []
  const errors: unknown[] = []
  const lists = () => told.filter((t) => 'list' in t).length
  const reflector = new Reflector(
    client,
    `/api/v1/namespaces/${ns}/configmaps`,
    {
      replace: (items) => told.push({ list: items.map((o: KubeObject) => o.metadata?.name ?? '').sort() }),
      event: (type, object) => told.push({ event: type, name: object.metadata?.name ?? '' }),
      error: (err) => errors.push(err),
    },
    // The backoff after the restart stays short, so the reconnect comes while the test still watches.
    { maxBackoffMs: 1000 },
  )
  await reflector.start()
  expect(told).toEqual([{ list: ['before'] }])
  const seenAt = reflector.resourceVersion

  // etcd's revision is global: writes in another namespace move it past what this reflector has seen. (A
  // fresh watch cache still serves the revision just before the one it started at: it takes two.)
  for (const name of ['unrelated-1', 'unrelated-2', 'unrelated-3'])
    await kube.kubectl(['apply', '-n', other, '-f', '-'], { input: configMap(name) })
  await restartApiServer(kube)
  await kube.kubectl(['delete', 'configmap', 'before', '-n', ns])
  await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: configMap('after') })

  // A relist, not a backoff loop: the reflector resumed from a resourceVersion the restarted server no
  // longer had, was told 410 Gone, and listed again (it lists only at start and after a 410).
  await vi.waitFor(() => expect(lists()).toBeGreaterThanOrEqual(2), { timeout: 40_000, interval: 100 })
  expect(Number(reflector.resourceVersion)).toBeGreaterThan(Number(seenAt))
  // Whether the delete and the create came in the relist or on the watch after it, what the consumer was
  // told since the last list adds up to exactly what the server has.
  await vi.waitFor(
    () => {
      const state = new Set<string>()
      for (const t of told) {
        if ('list' in t) {
          state.clear()
          for (const name of t.list) state.add(name)
        } else if (t.event === 'DELETED') state.delete(t.name)
        else state.add(t.name)
      }
      expect([...state].sort()).toEqual(['after'])
    },
    { timeout: 20_000, interval: 100 },
  )
  // 410 is handled, not reported: only the connection failures around the restart are.
  expect(errors.filter((e) => e instanceof KubeError && e.status === 410)).toEqual([])
  await reflector.stop()
}, 120_000)
