import { describe, expect, it } from 'vitest'
import { loadOnce } from './load-once.ts'

describe('loadOnce', () => {
  it('loads once for every caller, concurrent or later', async () => {
    let loads = 0
    const get = loadOnce(async () => {
      loads++
      await new Promise((resolve) => setTimeout(resolve, 5))
      return { n: loads }
    })
    const [a, b] = await Promise.all([get(), get()])
    expect(a).toBe(b)
    expect(await get()).toBe(a)
    expect(loads).toBe(1)
  })

  it('tries again after a failed load, and each caller of the failed one sees its error', async () => {
    let loads = 0
    const get = loadOnce(() => {
      loads++
      return loads === 1 ? Promise.reject(new Error('broken install')) : Promise.resolve('loaded')
    })
    const failed = await Promise.allSettled([get(), get()])
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(await get()).toBe('loaded')
    expect(loads).toBe(2)
  })
})
