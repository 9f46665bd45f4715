/**
 * Objects the adapters reject (a Query without a target, an ArkAgent whose replicas exceed the bound, ...)
 * are told so where a platform engineer looks: a `Valid` condition (False, reason InvalidSpec, the errors
 * with their field paths) on the object itself, and a Warning Event. The API server accepted the object,
 * so only the controller can say this; a rejected object never stops the controller, and a resource whose
 * new version is rejected keeps running on its last valid one. Fixing the object removes the condition.
 */
import { formatProblem } from '../api/index.ts'
import type { Rejection } from '../store/index.ts'
import type { EventSink } from './query.ts'
import { WorkQueue } from './queue.ts'

export const VALID = 'Valid'

export interface RejectionSource {
  rejections(): Rejection[]
  onRejection(listener: (r: Rejection) => void): () => void
  setObjectCondition(
    id: string,
    condition: { type: string; status: 'True' | 'False'; reason: string; message: string } | undefined,
    type: string,
  ): Promise<void>
}

export class ValidityController {
  readonly #source: RejectionSource
  readonly #events: EventSink
  readonly #latest = new Map<string, Rejection>()
  readonly #queue: WorkQueue
  readonly #onError: ((key: string, err: unknown) => void) | undefined
  #unsubscribe: (() => void) | undefined

  constructor(source: RejectionSource, events: EventSink, onError?: (key: string, err: unknown) => void) {
    this.#source = source
    this.#events = events
    this.#onError = onError
    this.#queue = new WorkQueue((id) => this.#reconcile(id), { concurrency: 4 })
  }

  start(): Promise<void> {
    this.#unsubscribe = this.#source.onRejection((r) => this.#note(r))
    for (const r of this.#source.rejections()) this.#note(r)
    return this.#queue.idle()
  }

  idle(): Promise<void> {
    return this.#queue.idle()
  }

  close(): void {
    this.#unsubscribe?.()
    this.#queue.close()
  }

  #note(r: Rejection): void {
    this.#latest.set(r.id, r)
    this.#queue.add(r.id)
  }

  async #reconcile(id: string): Promise<void> {
    const r = this.#latest.get(id)
    if (r === undefined) return
    this.#latest.delete(id)
    if (r.gone) return
    try {
      if (r.problems.length === 0) {
        await this.#source.setObjectCondition(id, undefined, VALID)
        return
      }
      const message = r.problems
        .map((p) => formatProblem({ ...p, kind: undefined, namespace: undefined, name: undefined }))
        .join('; ')
      await this.#source.setObjectCondition(
        id,
        { type: VALID, status: 'False', reason: 'InvalidSpec', message },
        VALID,
      )
      this.#events.record(
        {
          apiVersion: r.apiVersion,
          kind: r.kind,
          namespace: r.namespace,
          name: r.name,
          ...(r.uid === undefined ? {} : { uid: r.uid }),
        },
        'Warning',
        'InvalidSpec',
        message,
      )
    } catch (err) {
      this.#onError?.(id, err)
      // Try again later with whatever is latest by then.
      if (!this.#latest.has(id)) this.#latest.set(id, r)
      this.#queue.addRateLimited(id)
    }
  }
}
