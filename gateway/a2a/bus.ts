/**
 * Event buses of running A2A tasks, in this process: the SDK's ExecutionEventBus and its manager, on plain
 * listener arrays. The SDK's own bus is an EventTarget that allocates a CustomEvent per event and wraps every
 * listener; a task's few events go to one or two listeners, and on the hot path that machinery cost more
 * than the delivery. Same contract: `event` listeners get each event in order, `finished` ones are called
 * once the run is settled, `once` listeners are removed after their first call.
 */
import type {
  AgentExecutionEvent,
  EventListener,
  ExecutionEventBus,
  ExecutionEventBusManager,
  ExecutionEventName,
  FinishedListener,
} from '@a2a-js/sdk/server'

export class LocalBus implements ExecutionEventBus {
  #events: EventListener[] = []
  #finished: FinishedListener[] = []
  readonly #onceWrappers = new WeakMap<EventListener | FinishedListener, EventListener | FinishedListener>()

  publish(event: AgentExecutionEvent): void {
    // A copy: a listener may remove itself (or another) while the event is delivered.
    for (const listener of [...this.#events]) listener(event)
  }

  finished(): void {
    for (const listener of [...this.#finished]) listener()
  }

  on(eventName: 'event', listener: EventListener): this
  on(eventName: 'finished', listener: FinishedListener): this
  on(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    if (eventName === 'event') this.#events.push(listener)
    else this.#finished.push(listener as FinishedListener)
    return this
  }

  off(eventName: 'event', listener: EventListener): this
  off(eventName: 'finished', listener: FinishedListener): this
  off(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    // A listener added with once() is removed by the listener given, as EventEmitter does.
    const wrapper = this.#onceWrappers.get(listener)
    const gone = (l: EventListener | FinishedListener) => l !== listener && l !== wrapper
    if (eventName === 'event') this.#events = this.#events.filter(gone)
    else this.#finished = this.#finished.filter(gone)
    return this
  }

  once(eventName: 'event', listener: EventListener): this
  once(eventName: 'finished', listener: FinishedListener): this
  once(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    if (eventName === 'event') {
      const once: EventListener = (event) => {
        this.off('event', once)
        listener(event)
      }
      this.#onceWrappers.set(listener, once)
      return this.on('event', once)
    }
    const once: FinishedListener = () => {
      this.off('finished', once)
      ;(listener as FinishedListener)()
    }
    this.#onceWrappers.set(listener, once)
    return this.on('finished', once)
  }

  removeAllListeners(eventName?: ExecutionEventName): this {
    if (eventName !== 'finished') this.#events = []
    if (eventName !== 'event') this.#finished = []
    return this
  }
}

/** One LocalBus per running task, by task id (ids are random UUIDs, and the task store scopes every lookup). */
export class LocalBusManager implements ExecutionEventBusManager {
  readonly #buses = new Map<string, LocalBus>()

  createOrGetByTaskId(taskId: string): ExecutionEventBus {
    let bus = this.#buses.get(taskId)
    if (bus === undefined) {
      bus = new LocalBus()
      this.#buses.set(taskId, bus)
    }
    return bus
  }

  getByTaskId(taskId: string): ExecutionEventBus | undefined {
    return this.#buses.get(taskId)
  }

  cleanupByTaskId(taskId: string): void {
    this.#buses.get(taskId)?.removeAllListeners()
    this.#buses.delete(taskId)
  }
}
