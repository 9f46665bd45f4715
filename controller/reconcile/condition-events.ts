/**
 * Events for availability, as seed 002 shows them: a resource that becomes unavailable gets a Warning Event
 * with the condition's reason and message, and one that recovers a Normal Event. Only transitions are told,
 * not every status write, so a flapping dependency does not flood the namespace.
 */
import type { Status } from '../api/index.ts'
import type { ResourceView } from '../store/index.ts'
import type { EventSink } from './query.ts'
import { involvedObject } from './query.ts'

export function recordAvailabilityEvents(view: ResourceView, events: EventSink): () => void {
  const last = new Map<string, string>()
  const seen = (status: Status | undefined) => {
    const c = status?.conditions.find((x) => x.type === 'Available')
    return c === undefined ? undefined : { id: `${c.status} ${c.reason}`, c }
  }
  for (const r of view.list()) {
    const s = seen(view.status(r.key))
    if (s !== undefined) last.set(r.key, s.id)
  }
  return view.subscribe((batch) => {
    for (const e of batch) {
      if (e.type === 'deleted') {
        last.delete(e.resource.key)
        continue
      }
      if (e.type !== 'status') continue
      const s = seen(e.status)
      if (s === undefined || last.get(e.resource.key) === s.id) continue
      const before = last.get(e.resource.key)
      last.set(e.resource.key, s.id)
      // The first verdict of a resource that is fine says nothing new.
      if (before === undefined && s.c.status === 'True') continue
      events.record(
        involvedObject(e.resource),
        s.c.status === 'True' ? 'Normal' : 'Warning',
        s.c.status === 'True' ? 'Available' : s.c.reason,
        s.c.message,
      )
    }
  })
}
