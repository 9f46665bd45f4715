import { describe, expect, it } from 'vitest'
import { FairSlots } from './fair.ts'

/** Lets granted acquisitions' callbacks run. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('FairSlots (Queries run at once, shared across namespaces)', () => {
  it("gives another namespace the next free slot while one namespace's 5,000 Queries wait", async () => {
    const slots = new FairSlots(4)
    const order: string[] = []
    const releases: (() => void)[] = []
    const take = (tenant: string, id: string) =>
      void slots.acquire(tenant).then((release) => {
        order.push(id)
        releases.push(release)
      })
    for (let i = 0; i < 5000; i++) take('flood', `flood-${String(i)}`)
    await tick()
    expect(slots.inUse).toBe(4)
    expect(slots.waiting).toBe(4996)
    take('quiet', 'quiet-0')
    take('quiet', 'quiet-1')
    // Each freed slot alternates between the namespaces that wait: the quiet one waits one turn, not 4,996.
    for (let i = 0; i < 4; i++) releases.shift()?.()
    await tick()
    expect(order.slice(4)).toEqual(['flood-4', 'quiet-0', 'flood-5', 'quiet-1'])
    expect(slots.inUse).toBe(4)
  })

  it('takes a Query that stops waiting out of the line, and never counts it', async () => {
    const slots = new FairSlots(1)
    const first = await slots.acquire('a')
    const controller = new AbortController()
    const gone = slots.acquire('b', controller.signal)
    const next = slots.acquire('c')
    controller.abort(new Error('deleted'))
    await expect(gone).rejects.toThrow('deleted')
    expect(slots.waiting).toBe(1)
    first()
    first()
    const release = await next
    expect(slots.inUse).toBe(1)
    release()
    expect(slots.inUse).toBe(0)
  })
})
