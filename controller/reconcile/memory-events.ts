/**
 * Events kept in memory, for a control plane without an API server to write them to (`ark dev` over a
 * folder): what a cluster's `kubectl describe` would list, for the dashboard to show. Bounded as a cluster's
 * Events are by their TTL: the newest `perObject` Events of the newest `objects` objects; a repeat of the last
 * Event of an object (same type, reason and message) raises its count, as the API server's aggregation does.
 */
import type { EventSink, InvolvedObject } from './query.ts'

export interface RecordedEvent {
  readonly type: 'Normal' | 'Warning'
  readonly reason: string
  readonly message: string
  /** When it was last recorded, RFC 3339. */
  at: string
  count: number
}

export class MemoryEvents implements EventSink {
  readonly #byObject = new Map<string, RecordedEvent[]>()
  readonly #objects: number
  readonly #perObject: number
  readonly #now: () => Date

  constructor(options: { objects?: number; perObject?: number; now?: () => Date } = {}) {
    this.#objects = options.objects ?? 500
    this.#perObject = options.perObject ?? 100
    this.#now = options.now ?? (() => new Date())
  }

  record(object: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const key = keyOf(object.kind, object.namespace, object.name)
    let events = this.#byObject.get(key)
    if (events === undefined) {
      events = []
      this.#byObject.set(key, events)
      // The oldest object's Events go first (a Map iterates in insertion order).
      if (this.#byObject.size > this.#objects) {
        const oldest = this.#byObject.keys().next().value
        if (oldest !== undefined) this.#byObject.delete(oldest)
      }
    }
    const at = this.#now().toISOString()
    const last = events.at(-1)
    if (last !== undefined && last.type === type && last.reason === reason && last.message === message) {
      last.count += 1
      last.at = at
      return
    }
    events.push({ type, reason, message, at, count: 1 })
    if (events.length > this.#perObject) events.shift()
  }

  /** An object's Events, oldest first; undefined when none was recorded. */
  of(kind: string, namespace: string, name: string): readonly RecordedEvent[] | undefined {
    return this.#byObject.get(keyOf(kind, namespace, name))
  }
}

function keyOf(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`
}
