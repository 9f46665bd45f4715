/**
 * `ark query <target> "<input>"`: runs one query on the manifests of a folder (or file) in this process, as
 * `ark dev` would serve it, and prints the result as `kubectl describe query` prints a Query: its target,
 * phase, duration, token usage, response and the Events seed 000 shows (AgentExecutionStart, LLMCallStart,
 * ToolCallStart, ...). With `--watch` the Events are printed as they happen. Exit status: 0 done, 1 the
 * target failed or could not run, 2 a usage error.
 */
import type { QueryTarget } from '../controller/api/index.ts'
import type { Logger } from '../gateway/index.ts'
import { silentLogger } from '../gateway/index.ts'
import type { Embedded } from './embedded.ts'
import { startEmbedded } from './embedded.ts'
import { queryRunner } from './query-runner.ts'

export interface QueryOptions {
  readonly manifests: string
  /** `agent/<name>`, `team/<name>`, `model/<name>`, with `<namespace>/` before the name, or a bare agent name. */
  readonly target: string
  readonly input: string
  readonly parameters: Readonly<Record<string, string>>
  /** Print each Event as it happens, not only at the end. */
  readonly watch: boolean
  /** Models without a key anywhere: the mock answers (as `ark dev`), or they are unavailable. */
  readonly withoutKey: 'mock' | 'unavailable'
  readonly timeoutSeconds: number
  readonly out: (text: string) => void
  /** Where usage errors go (stderr). */
  readonly err: (text: string) => void
  readonly log?: Logger
}

/** An Event as the description lists it: `at` in ms from the start of the command. */
export interface DescribedEvent {
  readonly type: 'Normal' | 'Warning'
  readonly reason: string
  readonly message: string
  readonly at: number
}

const KINDS = new Set(['agent', 'team', 'model'])

/**
 * The target as a Query names it, or why it cannot be one. A namespace in the text wins over `namespace`
 * (`-n` on a cluster).
 */
export function parseTarget(
  text: string,
  namespace = 'default',
): { namespace: string; target: QueryTarget } | { error: string } {
  const parts = text.split('/')
  const [first = '', second = '', third = ''] = parts
  if (parts.length === 1 && first !== '') return { namespace, target: { type: 'agent', name: first } }
  if (parts.length === 2 && KINDS.has(first) && second !== '')
    return { namespace, target: { type: first as QueryTarget['type'], name: second } }
  if (parts.length === 3 && KINDS.has(first) && second !== '' && third !== '')
    return { namespace: second, target: { type: first as QueryTarget['type'], name: third } }
  return {
    error: `the target ${JSON.stringify(text.slice(0, 100))} is not agent/<name>, team/<name>, model/<name> (each optionally <kind>/<namespace>/<name>) or an agent's name`,
  }
}

export async function runQuery(options: QueryOptions): Promise<number> {
  const parsed = parseTarget(options.target)
  if ('error' in parsed) {
    options.err(`ark query: ${parsed.error}\n`)
    return 2
  }
  const system = await startLocal(options.manifests, options)
  try {
    return await queryOn(system, parsed, options)
  } finally {
    await system.close()
  }
}

/** The manifests of a folder or file, served in this process for one command: no watch, no probes. */
export function startLocal(
  manifests: string,
  options: Pick<QueryOptions, 'withoutKey' | 'timeoutSeconds' | 'log'> & {
    readonly mockEverything?: boolean
  },
): Promise<Embedded> {
  return startEmbedded({
    manifests,
    providers: {
      withoutKey: options.withoutKey,
      ...(options.mockEverything === true ? { mockEverything: true } : {}),
    },
    probeIntervalSeconds: 0,
    taskTimeoutMs: options.timeoutSeconds * 1000,
    log: options.log ?? silentLogger,
    watch: false,
  })
}

/** Runs the query on a started system and prints it; the exit status. */
export async function queryOn(
  system: Embedded,
  { namespace, target }: { readonly namespace: string; readonly target: QueryTarget },
  options: Omit<QueryOptions, 'target' | 'manifests' | 'withoutKey'>,
): Promise<number> {
  const log = options.log ?? silentLogger
  const events: DescribedEvent[] = []
  const started = performance.now()
  const name = `${target.type}/${namespace}/${target.name}`
  // Not waiting for every reconcile to settle (an unreachable MCP server of another agent would hold it
  // for its timeout): the runner waits for its own target's availability verdict, as on a cluster.
  const controller = new AbortController()
  const timer = setTimeout(() => {
    controller.abort(new DOMException('the query timed out', 'TimeoutError'))
  }, options.timeoutSeconds * 1000)
  const outcome = await queryRunner(system.controlPlane.catalog, system.gateway, log)
    .run({
      namespace,
      target,
      messages: [{ role: 'user', content: options.input }],
      parameters: options.parameters,
      signal: controller.signal,
      onEvent: (reason, message, type = 'Normal') => {
        const e = { type, reason, message, at: performance.now() - started }
        events.push(e)
        if (options.watch) options.out(eventLine(e))
      },
    })
    .finally(() => {
      clearTimeout(timer)
    })
  const lines: [string, string][] = [
    ['Name', name],
    ['Input', options.input],
    ['Phase', outcome.ok ? 'done' : 'error'],
    ['Duration', seconds(performance.now() - started)],
  ]
  if (!outcome.ok) lines.push(['Reason', outcome.reason], ['Message', outcome.message])
  options.out(describeQuery(lines, outcome.usage, outcome.ok ? outcome.content : undefined, events))
  return outcome.ok ? 0 : 1
}

/**
 * A Query as `kubectl describe` lays one out: its fields (an input on one line, cut at 100 characters), the
 * token usage, the response when there is one, and the Events.
 */
export function describeQuery(
  fields: readonly (readonly [string, string])[],
  usage:
    | { readonly promptTokens: number; readonly completionTokens: number; readonly totalTokens: number }
    | undefined,
  response: string | undefined,
  events: readonly DescribedEvent[],
): string {
  const lines = fields.map(([k, v]) => [k, k === 'Input' ? oneLine(v) : v] as const)
  if (usage !== undefined)
    lines.push([
      'Token Usage',
      `prompt ${String(usage.promptTokens)}, completion ${String(usage.completionTokens)}, total ${String(usage.totalTokens)}`,
    ])
  const width = Math.max(...lines.map(([k]) => k.length)) + 2
  let text = lines.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}\n`).join('')
  if (response !== undefined) text += `Response:\n${indent(response)}\n`
  text += events.length === 0 ? 'Events:  <none>\n' : `Events:\n${eventTable(events)}`
  return text
}

/** An Event as `--watch` prints it when it happens. */
export function eventLine(e: DescribedEvent): string {
  return `${seconds(e.at)}  ${e.type.padEnd(7)}  ${e.reason.padEnd(24)}  ${e.message}\n`
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > 100 ? `${flat.slice(0, 97)}...` : flat
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')
}

/** As kubectl describe prints Events: type, reason, age (here: when, from the start), message. */
function eventTable(events: readonly DescribedEvent[]): string {
  const rows = [
    ['Type', 'Reason', 'At', 'Message'],
    ['----', '------', '--', '-------'],
    ...events.map((e) => [e.type, e.reason, seconds(e.at), e.message]),
  ]
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map(
      (r) =>
        `  ${r
          .slice(0, 3)
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')}  ${r[3] ?? ''}\n`,
    )
    .join('')
}
