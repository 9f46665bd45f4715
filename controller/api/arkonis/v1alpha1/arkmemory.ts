import { conditionsAs } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { MemorySpec } from '../../resources.ts'
import { Conditions, Enum, Int, LocalRef, Obj, Opt, Str } from '../../schema.ts'
import { ARKONIS_GROUP } from '../group.ts'

export const ArkMemory = defineKind({
  group: ARKONIS_GROUP,
  version: 'v1alpha1',
  kind: 'ArkMemory',
  plural: 'arkmemories',
  internal: 'Memory',
  shortNames: ['aomem'],
  crd: true,
  printerColumns: [
    { name: 'Backend', type: 'string', jsonPath: '.spec.backend' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        backend: Enum(['in-context', 'vector-store', 'redis']),
        redis: Opt(
          Obj({
            secretRef: LocalRef,
            ttlSeconds: Opt(Int({ minimum: 0, default: 3600 })),
            maxEntries: Opt(Int({ minimum: 0, description: '0 means unlimited.' })),
          }),
        ),
        vectorStore: Opt(
          Obj({
            provider: Enum(['qdrant', 'pinecone', 'weaviate']),
            endpoint: Str({ minLength: 1 }),
            collection: Opt(Str({ default: 'agent-memories' })),
            secretRef: Opt(LocalRef),
            ttlSeconds: Opt(Int({ minimum: 0 })),
          }),
        ),
      },
      { required: ['backend'] },
    ),
    status: Opt(Obj({ observedGeneration: Opt(Int()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    let out: MemorySpec = { backend: spec.backend, headers: [] }
    if (spec.backend === 'redis') {
      if (spec.redis === undefined)
        ctx.error('spec.redis', 'is required for backend redis (secretRef with REDIS_URL)')
      else
        out = {
          ...out,
          redis: {
            secretName: spec.redis.secretRef.name,
            ttlSeconds: spec.redis.ttlSeconds ?? 3600,
            ...(spec.redis.maxEntries === undefined ? {} : { maxEntries: spec.redis.maxEntries }),
          },
        }
    }
    if (spec.backend === 'vector-store') {
      const v = spec.vectorStore
      if (v === undefined) ctx.error('spec.vectorStore', 'is required for backend vector-store')
      else
        out = {
          ...out,
          vectorStore: {
            provider: v.provider,
            endpoint: v.endpoint,
            collection: v.collection ?? 'agent-memories',
            ...(v.secretRef === undefined ? {} : { secretName: v.secretRef.name }),
            ...(v.ttlSeconds === undefined ? {} : { ttlSeconds: v.ttlSeconds }),
          },
        }
    }
    return { spec: out }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Ready') }),
})
