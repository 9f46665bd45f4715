/**
 * A pool worker's own metrics, beside the runtime's (gateway/metrics.ts): what an HPA or KEDA scales on and
 * what an operator watches when tasks go missing. Label values are pool names from manifests.
 */
import type { Registry } from 'prom-client'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { WorkerObserver } from './redis-worker.ts'

const SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
]

export interface WorkerGauges {
  readonly inFlight: () => number
  readonly ready: () => boolean
}

export class WorkerMetrics {
  readonly #wait: Histogram<'pool'>
  readonly #run: Histogram<'pool' | 'outcome'>
  readonly #reclaimed: Counter<'pool'>
  readonly #retried: Counter<'pool'>
  readonly #deadLettered: Counter<'pool'>
  readonly #handedBack: Counter<'pool'>
  readonly #gauges = new Map<string, WorkerGauges>()

  constructor(registry: Registry) {
    const registers = [registry]
    const gauges = this.#gauges
    this.#wait = new Histogram({
      name: 'ark_queue_wait_seconds',
      help: 'Time tasks waited in their pool stream before a worker started them.',
      labelNames: ['pool'],
      buckets: SECONDS,
      registers,
    })
    this.#run = new Histogram({
      name: 'ark_queue_run_seconds',
      help: 'Time workers took to run tasks, by outcome.',
      labelNames: ['pool', 'outcome'],
      buckets: SECONDS,
      registers,
    })
    this.#reclaimed = new Counter({
      name: 'ark_queue_reclaimed_total',
      help: 'Tasks taken over from a worker that stopped renewing them (it died, hung, or handed them back).',
      labelNames: ['pool'],
      registers,
    })
    this.#retried = new Counter({
      name: 'ark_queue_retried_total',
      help: 'Tasks run again after being taken over.',
      labelNames: ['pool'],
      registers,
    })
    this.#deadLettered = new Counter({
      name: 'ark_queue_dead_lettered_total',
      help: 'Tasks moved to the dead-letter stream after too many attempts.',
      labelNames: ['pool'],
      registers,
    })
    this.#handedBack = new Counter({
      name: 'ark_worker_handed_back_total',
      help: 'Tasks a stopping worker could not finish within its grace period and gave back to the pool.',
      labelNames: ['pool'],
      registers,
    })
    new Gauge({
      name: 'ark_worker_tasks_in_flight',
      help: "Tasks this worker process is running, by pool (the pool's total is ark_pool_in_flight).",
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset()
        for (const [pool, g] of gauges) this.labels(pool).set(g.inFlight())
      },
    })
    new Gauge({
      name: 'ark_worker_ready',
      help: 'Whether this worker takes tasks of the pool (1) or not (0: its semantic probe failed, or Redis is away).',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset()
        for (const [pool, g] of gauges) this.labels(pool).set(g.ready() ? 1 : 0)
      },
    })
  }

  /** The observer of one pool's worker, and its gauges; `untrack` when the worker stops. */
  track(pool: string, gauges: WorkerGauges): WorkerObserver {
    this.#gauges.set(pool, gauges)
    const wait = this.#wait.labels(pool)
    const reclaimed = this.#reclaimed.labels(pool)
    const retried = this.#retried.labels(pool)
    const deadLettered = this.#deadLettered.labels(pool)
    const handedBack = this.#handedBack.labels(pool)
    return {
      started: ({ waitSeconds, retry }) => {
        wait.observe(waitSeconds)
        if (retry) retried.inc()
      },
      finished: ({ runSeconds, outcome }) => this.#run.labels(pool, outcome).observe(runSeconds),
      reclaimed: () => reclaimed.inc(),
      deadLettered: () => deadLettered.inc(),
      handedBack: (count) => handedBack.inc(count),
    }
  }

  untrack(pool: string): void {
    this.#gauges.delete(pool)
  }
}
