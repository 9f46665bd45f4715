/** The local event bus keeps the SDK bus's contract: order, removal (once() ones by their listener), finished. */
import type { AgentExecutionEvent } from '@a2a-js/sdk/server'
import { describe, expect, it } from 'vitest'
import { LocalBus, LocalBusManager } from './bus.ts'

const event = (n: number) =>
  ({ kind: 'message', data: { messageId: String(n) } }) as unknown as AgentExecutionEvent
const idOf = (e: AgentExecutionEvent) => (e.data as { messageId: string }).messageId

describe('LocalBus', () => {
  it('delivers events in order to every listener, and stops delivering to one taken off', () => {
    const bus = new LocalBus()
    const a: string[] = []
    const b: string[] = []
    const la = (e: AgentExecutionEvent) => a.push(idOf(e))
    bus.on('event', la).on('event', (e) => b.push(idOf(e)))
    bus.publish(event(1))
    bus.off('event', la)
    bus.publish(event(2))
    expect(a).toEqual(['1'])
    expect(b).toEqual(['1', '2'])
  })

  it('calls a once() listener one time, and off() with the same listener removes it before that', () => {
    const bus = new LocalBus()
    const seen: string[] = []
    const listener = (e: AgentExecutionEvent) => seen.push(idOf(e))
    bus.once('event', listener)
    bus.publish(event(1))
    bus.publish(event(2))
    expect(seen).toEqual(['1'])
    const never: string[] = []
    const other = (e: AgentExecutionEvent) => never.push(idOf(e))
    bus.once('event', other)
    bus.off('event', other)
    bus.publish(event(3))
    expect(never).toEqual([])
  })

  it('a listener that removes itself while an event is delivered does not stop the others getting it', () => {
    const bus = new LocalBus()
    const seen: string[] = []
    const self = () => bus.off('event', self)
    bus.on('event', self).on('event', (e) => seen.push(idOf(e)))
    bus.publish(event(1))
    expect(seen).toEqual(['1'])
  })

  it('finished() calls the finished listeners; removeAllListeners() silences both kinds', () => {
    const bus = new LocalBus()
    let finished = 0
    const seen: string[] = []
    bus.on('finished', () => finished++).on('event', (e) => seen.push(idOf(e)))
    bus.finished()
    bus.removeAllListeners()
    bus.finished()
    bus.publish(event(1))
    expect(finished).toBe(1)
    expect(seen).toEqual([])
  })

  it('the manager keeps one bus per task until it is cleaned up', () => {
    const buses = new LocalBusManager()
    const bus = buses.createOrGetByTaskId('t')
    expect(buses.createOrGetByTaskId('t')).toBe(bus)
    expect(buses.getByTaskId('t')).toBe(bus)
    buses.cleanupByTaskId('t')
    expect(buses.getByTaskId('t')).toBeUndefined()
  })
})
