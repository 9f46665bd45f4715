import { describe, expect, it } from 'vitest'
import { InFlightBound } from './in-flight.ts'

/** Takes slots for `namespace` until one is refused: the releases taken. */
function fill(bound: InFlightBound, namespace: string, most = Infinity): (() => void)[] {
  const taken: (() => void)[] = []
  while (taken.length < most) {
    const release = bound.take(namespace)
    if (release === undefined) break
    taken.push(release)
  }
  return taken
}

describe('InFlightBound', () => {
  it('lets one namespace fill all but the reserve, which others then find free however many flood', () => {
    const bound = new InFlightBound(100)
    expect(fill(bound, 'flood')).toHaveLength(90)
    expect(bound.take('flood')).toBeUndefined()
    // A second flood gets half the reserve; the other half is for namespaces that hold nothing.
    expect(fill(bound, 'second')).toHaveLength(5)
    for (const newcomer of ['c', 'd', 'e', 'f', 'g']) expect(fill(bound, newcomer), newcomer).toHaveLength(1)
    expect(bound.total).toBe(100)
    // Full: nobody gets in, whatever their share.
    expect(bound.take('h')).toBeUndefined()
  })

  it('gives freed slots past the open part only to namespaces under their share', () => {
    const bound = new InFlightBound(100)
    const flood = fill(bound, 'flood')
    const quiet = fill(bound, 'quiet')
    // Slots the flood frees go to the quiet namespace (under its share of 45), not back to the flood.
    expect(quiet).toHaveLength(5)
    flood.splice(0, 5).forEach((release) => release())
    expect(bound.take('flood')).toBeUndefined()
    quiet.push(...fill(bound, 'quiet'))
    expect(quiet).toHaveLength(10)
    // Below the open part, anyone is admitted again.
    flood.splice(0, 20).forEach((release) => release())
    expect(bound.take('flood')).toBeTypeOf('function')
  })

  it('keeps a namespace with a steady demand near its share while another floods', () => {
    const bound = new InFlightBound(1000)
    const flood: (() => void)[] = []
    const quiet: (() => void)[] = []
    // Each round the oldest tenth of the flood's runs end and both ask for as much as they can get, the flood
    // first (it always has a request waiting); the quiet namespace wants 300 at most.
    for (let round = 0; round < 200; round++) {
      flood.splice(0, 100).forEach((release) => release())
      quiet.splice(0, 10).forEach((release) => release())
      flood.push(...fill(bound, 'flood'))
      quiet.push(...fill(bound, 'quiet', 300 - quiet.length))
    }
    // The quiet namespace holds its whole demand; the flood the rest of the open part (not the reserve).
    expect(bound.heldBy('quiet')).toBe(300)
    expect(bound.heldBy('flood')).toBeGreaterThanOrEqual(600)
    expect(bound.total).toBeLessThanOrEqual(1000)
  })

  it('counts a release once, however often it is called, and forgets namespaces that hold nothing', () => {
    const bound = new InFlightBound(10)
    const release = bound.take('a')
    expect(release).toBeTypeOf('function')
    release?.()
    release?.()
    expect(bound.total).toBe(0)
    expect(bound.heldBy('a')).toBe(0)
    // A namespace that held slots once does not count as active: the next one alone gets all but the reserve.
    expect(fill(bound, 'b')).toHaveLength(9)
  })

  it('uses a bound under ten whole, with nothing reserved', () => {
    const bound = new InFlightBound(2)
    expect(fill(bound, 'a')).toHaveLength(2)
    expect(bound.take('b')).toBeUndefined()
  })

  it('says whether a namespace would be refused, as take decides, without taking', () => {
    const bound = new InFlightBound(100)
    fill(bound, 'flood')
    expect(bound.full('flood')).toBe(true)
    expect(bound.full('quiet')).toBe(false)
    expect(bound.total).toBe(90)
    fill(bound, 'quiet')
    expect([bound.full('quiet'), bound.take('quiet')]).toEqual([true, undefined])
  })
})
