import { describe, expect, it } from 'vitest'
import { WorkQueue } from './queue.ts'

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('WorkQueue', () => {
  it('processes a key added several times before it runs once', async () => {
    const seen: string[] = []
    const q = new WorkQueue((k) => {
      seen.push(k)
      return Promise.resolve()
    })
    q.add('a')
    q.add('b')
    q.add('a')
    await q.idle()
    expect(seen).toEqual(['a', 'b'])
  })

  it('never runs one key twice at once; a key added while it runs runs again after', async () => {
    let running = 0
    let most = 0
    let runs = 0
    let release!: () => void
    const q = new WorkQueue(
      async () => {
        running++
        most = Math.max(most, running)
        runs++
        if (runs === 1) await new Promise<void>((r) => (release = r))
        running--
      },
      { concurrency: 4 },
    )
    q.add('a')
    await tick(5)
    q.add('a')
    q.add('a')
    await tick(5)
    expect(runs).toBe(1)
    release()
    await q.idle()
    expect(runs).toBe(2)
    expect(most).toBe(1)
  })

  it('runs different keys concurrently up to the bound', async () => {
    let running = 0
    let most = 0
    const q = new WorkQueue(
      async () => {
        running++
        most = Math.max(most, running)
        await tick(10)
        running--
      },
      { concurrency: 3 },
    )
    for (let i = 0; i < 10; i++) q.add(`k${String(i)}`)
    await q.idle()
    expect(most).toBe(3)
  })

  it('keeps one timer per key, the earliest', async () => {
    const seen: string[] = []
    const q = new WorkQueue((k) => {
      seen.push(k)
      return Promise.resolve()
    })
    q.addAfter('a', 40)
    q.addAfter('a', 10)
    q.addAfter('a', 60)
    await tick(25)
    expect(seen).toEqual(['a'])
    await tick(60)
    expect(seen).toEqual(['a'])
    q.close()
  })

  it('backs off a failing key exponentially and forget resets it', () => {
    const q = new WorkQueue(() => Promise.resolve(), { baseDelayMs: 1000, maxDelayMs: 4000 })
    q.addRateLimited('a')
    q.addRateLimited('a')
    q.addRateLimited('a')
    expect(q.failures('a')).toBe(3)
    q.forget('a')
    expect(q.failures('a')).toBe(0)
    q.close()
  })

  it('reports its depth', async () => {
    const depths: number[] = []
    const q = new WorkQueue(() => Promise.resolve(), { onDepth: (d) => depths.push(d) })
    q.add('a')
    q.add('b')
    await q.idle()
    expect(Math.max(...depths)).toBe(2)
    expect(depths.at(-1)).toBe(0)
  })
})
