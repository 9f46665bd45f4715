import { describe, expect, it } from 'vitest'
import type { AnyResource } from '../api/index.ts'
import { decodeDocument } from '../api/index.ts'
import { sameResource } from './store.ts'

const agent = (metadata: object, prompt = 'hi'): AnyResource => {
  const r = decodeDocument(
    {
      value: {
        apiVersion: 'ark.mckinsey.com/v1alpha1',
        kind: 'Agent',
        metadata: { name: 'a', ...metadata },
        spec: { prompt },
      },
    },
    'default',
  ).resources[0]
  if (r === undefined) throw new Error('not decoded')
  return r
}

describe('sameResource (change detection)', () => {
  it('ignores resourceVersion, which every status write bumps', () => {
    expect(
      sameResource(
        agent({ resourceVersion: '1', generation: 1 }),
        agent({ resourceVersion: '9', generation: 1 }),
      ),
    ).toBe(true)
  })
  it('sees spec, labels, annotations, generation and uid', () => {
    const base = agent({ generation: 1, uid: 'u', labels: { a: 'b' } })
    expect(sameResource(base, agent({ generation: 1, uid: 'u', labels: { a: 'b' } }, 'other'))).toBe(false)
    expect(sameResource(base, agent({ generation: 1, uid: 'u', labels: { a: 'c' } }))).toBe(false)
    expect(
      sameResource(base, agent({ generation: 1, uid: 'u', labels: { a: 'b' }, annotations: { x: 'y' } })),
    ).toBe(false)
    expect(sameResource(base, agent({ generation: 2, uid: 'u', labels: { a: 'b' } }))).toBe(false)
    expect(sameResource(base, agent({ generation: 1, uid: 'v', labels: { a: 'b' } }))).toBe(false)
  })
})
