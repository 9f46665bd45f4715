/**
 * Prometheus metrics, with OpenTelemetry GenAI and HTTP semantic-convention names where one exists
 * (`gen_ai_client_token_usage`, `gen_ai_client_operation_duration_seconds`,
 * `http_server_request_duration_seconds`) and `ark_` names for the rest. Label values are bounded: agent,
 * tool and pool names come from manifests, never from requests (a tool name the model made up is counted as
 * `(unknown)`). Label children are cached so that recording on the hot path is a Map lookup and an add.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Catalog } from '../controller/store/index.ts'
import type { AgentEvent } from './runtime/events.ts'
import type { PreparedAgent } from './runtime/prepare.ts'
import type { PoolStats } from './pool/queue.ts'

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
/** OpenTelemetry's advice for gen_ai.client.token.usage. */
const TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
const ITERATIONS = [1, 2, 3, 5, 10, 20, 50, 100]

export interface MetricsOptions {
  readonly catalog: Catalog
  /** A shared queue reads its pools' stats from Redis, hence the promise. */
  readonly pools: () => readonly PoolStats[] | Promise<readonly PoolStats[]>
  /** Node's process metrics (CPU, memory, event loop lag); the CLI turns them on. */
  readonly processMetrics?: boolean
  /** Where to register (default a new one): the sandbox records into the same registry. */
  readonly registry?: Registry
}

interface HttpLabels {
  readonly method: string
  readonly route: string
  readonly status: number
  readonly target: string
}

export class Metrics {
  readonly registry: Registry
  readonly #http: Histogram<'http_request_method' | 'http_route' | 'http_response_status_code' | 'ark_target'>
  readonly #requestDuration: Histogram<'gen_ai_operation_name' | 'gen_ai_agent_name' | 'error_type'>
  readonly #runs: Counter<'agent' | 'outcome'>
  readonly #iterations: Histogram<'agent'>
  readonly #llmDuration: Histogram<
    'gen_ai_operation_name' | 'gen_ai_provider_name' | 'gen_ai_request_model' | 'agent' | 'error_type'
  >
  readonly #tokens: Histogram<'gen_ai_token_type' | 'gen_ai_provider_name' | 'gen_ai_request_model' | 'agent'>
  readonly #toolCalls: Counter<'agent' | 'tool' | 'outcome'>
  readonly #toolDuration: Histogram<'tool' | 'outcome'>
  readonly #rejected: Counter<'pool'>
  readonly #children = new Map<string, { observe(v: number): void }>()
  readonly #agents = new WeakMap<PreparedAgent, AgentRecorder>()

  constructor(options: MetricsOptions) {
    this.registry = options.registry ?? new Registry()
    const registers = [this.registry]
    const { catalog, pools } = options
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry })
    this.#http = new Histogram({
      name: 'http_server_request_duration_seconds',
      help: 'HTTP requests served, by route, status and target (agent/x, model/x); the _count is the request count.',
      labelNames: ['http_request_method', 'http_route', 'http_response_status_code', 'ark_target'],
      buckets: SECONDS,
      registers,
    })
    this.#requestDuration = new Histogram({
      name: 'gen_ai_server_request_duration_seconds',
      help: 'Agent invocations from request to last byte, by agent and error type.',
      labelNames: ['gen_ai_operation_name', 'gen_ai_agent_name', 'error_type'],
      buckets: SECONDS,
      registers,
    })
    this.#runs = new Counter({
      name: 'ark_agent_runs_total',
      help: 'Agent runs by outcome: answer, terminated, max_iterations, timeout, cancelled, invalid_output, error.',
      labelNames: ['agent', 'outcome'],
      registers,
    })
    this.#iterations = new Histogram({
      name: 'ark_agent_iterations',
      help: 'Tool-loop iterations (model calls) per agent run.',
      labelNames: ['agent'],
      buckets: ITERATIONS,
      registers,
    })
    this.#llmDuration = new Histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'Model calls, by provider, model and agent (empty for direct model/<name> calls).',
      labelNames: [
        'gen_ai_operation_name',
        'gen_ai_provider_name',
        'gen_ai_request_model',
        'agent',
        'error_type',
      ],
      buckets: SECONDS,
      registers,
    })
    this.#tokens = new Histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens per model call, input and output.',
      labelNames: ['gen_ai_token_type', 'gen_ai_provider_name', 'gen_ai_request_model', 'agent'],
      buckets: TOKENS,
      registers,
    })
    this.#toolCalls = new Counter({
      name: 'ark_tool_calls_total',
      help: 'Tool calls by agent, tool and outcome (ok, error, invalid_arguments, unknown_tool, timeout, cancelled; sandboxed tools also denied, memory, trap, too_large).',
      labelNames: ['agent', 'tool', 'outcome'],
      registers,
    })
    this.#toolDuration = new Histogram({
      name: 'ark_tool_call_duration_seconds',
      help: 'Tool call duration by tool and outcome.',
      labelNames: ['tool', 'outcome'],
      buckets: SECONDS,
      registers,
    })
    this.#rejected = new Counter({
      name: 'ark_pool_rejected_total',
      help: 'Tasks refused because the pool queue was full (HTTP 429).',
      labelNames: ['pool'],
      registers,
    })
    // prom-client collects every metric of a scrape at once: the pool gauges share one read of the pools' stats
    // (on Redis, one pipeline per scrape rather than one per gauge).
    let reading: Promise<readonly PoolStats[]> | undefined
    const statsOfThisScrape = (): Promise<readonly PoolStats[]> =>
      (reading ??= Promise.resolve(pools()).finally(() => {
        reading = undefined
      }))
    const poolGauge = (name: string, help: string, value: (p: PoolStats) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'],
        registers,
        async collect() {
          const stats = await statsOfThisScrape()
          this.reset()
          for (const p of stats) {
            const v = value(p)
            if (v !== undefined) this.labels(p.pool).set(v)
          }
        },
      })
    poolGauge(
      'ark_pool_in_flight',
      'Tasks running in each agent pool (on Redis: taken by a worker, not yet answered).',
      (p) => p.inFlight,
    )
    poolGauge(
      'ark_pool_queue_depth',
      'Tasks waiting in each agent pool (on Redis: the consumer group lag, not yet taken by a worker).',
      (p) => p.queued,
    )
    poolGauge(
      'ark_pool_concurrency',
      'Tasks each agent pool runs at once (replicas x maxConcurrentTasks).',
      (p) => p.concurrency,
    )
    poolGauge(
      'ark_pool_workers',
      'Workers of each agent pool on Redis that reported alive in the last 10 s (pools in this process have none).',
      (p) => p.workers,
    )
    new Gauge({
      name: 'ark_resource_available',
      help: 'Whether each Agent, Model, Tool and Team is Available (1) or not (0).',
      labelNames: ['kind', 'namespace', 'name'],
      registers,
      collect() {
        this.reset()
        for (const kind of ['Agent', 'Model', 'Tool', 'Team'] as const) {
          for (const r of catalog.list(kind)) {
            const c = catalog.available(r.key)
            if (c !== undefined)
              this.labels(kind, r.ref.namespace, r.ref.name).set(c.status === 'True' ? 1 : 0)
          }
        }
      },
    })
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  http(labels: HttpLabels, seconds: number): void {
    const key = `${labels.method} ${labels.route} ${String(labels.status)} ${labels.target}`
    let child = this.#children.get(key)
    if (child === undefined) {
      child = this.#http.labels(labels.method, labels.route, String(labels.status), labels.target)
      this.#children.set(key, child)
    }
    child.observe(seconds)
  }

  rejected(pool: string): void {
    this.#rejected.labels(pool).inc()
  }

  /** The end of one agent invocation, as the caller saw it (`error_type` empty on success). */
  invocation(agent: string, errorType: string, seconds: number): void {
    this.#requestDuration.labels('invoke_agent', agent, errorType).observe(seconds)
  }

  /** One direct model call (`model/<name>`), which no agent made. */
  modelCall(provider: string, model: string, error: boolean, seconds: number): void {
    this.#llmDuration.labels('chat', provider, model, '', error ? 'error' : '').observe(seconds)
  }

  /** Records one event of a run; the runtime calls it for every event of every task. */
  observe(agent: PreparedAgent, event: AgentEvent): void {
    let r = this.#agents.get(agent)
    if (r === undefined) this.#agents.set(agent, (r = new AgentRecorder(this, agent)))
    r.record(event)
  }

  /** @internal label children for AgentRecorder */
  children() {
    return {
      runs: this.#runs,
      iterations: this.#iterations,
      llm: this.#llmDuration,
      tokens: this.#tokens,
      tools: this.#toolCalls,
      toolDuration: this.#toolDuration,
    }
  }
}

/** One agent's label children, created on first use: recording is then a Map lookup. */
class AgentRecorder {
  readonly #agent: string
  readonly #tools: ReadonlySet<string>
  readonly #m: ReturnType<Metrics['children']>
  readonly #cache = new Map<string, { inc(v?: number): void; observe(v: number): void }>()

  constructor(metrics: Metrics, agent: PreparedAgent) {
    this.#agent = `${agent.resource.ref.namespace}/${agent.resource.ref.name}`
    this.#tools = new Set(agent.tools.keys())
    this.#m = metrics.children()
  }

  record(e: AgentEvent): void {
    const a = this.#agent
    switch (e.type) {
      case 'agent.complete':
        this.#get(`r ${e.outcome}`, () => this.#m.runs.labels(a, e.outcome)).inc()
        this.#get('i', () => this.#m.iterations.labels(a)).observe(e.iterations)
        break
      case 'llm.complete': {
        const p = e.provider
        const err = e.error === undefined ? '' : 'error'
        this.#get(`l ${e.model} ${err}`, () => this.#m.llm.labels('chat', p, e.model, a, err)).observe(
          e.seconds,
        )
        if (e.error === undefined) {
          this.#get(`ti ${e.model}`, () => this.#m.tokens.labels('input', p, e.model, a)).observe(
            e.usage.promptTokens,
          )
          this.#get(`to ${e.model}`, () => this.#m.tokens.labels('output', p, e.model, a)).observe(
            e.usage.completionTokens,
          )
        }
        break
      }
      case 'tool.complete': {
        const tool = this.#tools.has(e.tool) ? e.tool : '(unknown)'
        this.#get(`t ${tool} ${e.outcome}`, () => this.#m.tools.labels(a, tool, e.outcome)).inc()
        this.#get(`td ${tool} ${e.outcome}`, () => this.#m.toolDuration.labels(tool, e.outcome)).observe(
          e.seconds,
        )
        break
      }
      default:
    }
  }

  /** Counter and histogram children both fit: each caller uses the method its metric has. */
  #get(key: string, make: () => object) {
    let c = this.#cache.get(key)
    if (c === undefined) {
      c = make() as { inc(v?: number): void; observe(v: number): void }
      this.#cache.set(key, c)
    }
    return c
  }
}
