/**
 * What an API key may do: its scope. A key with none may do everything; a scope narrows it along three
 * lines, each optional and each a list (an empty list allows nothing):
 *
 * - `routes`: which faces it may call: `openai` (/v1), `a2a`, `mcp`, `metrics`. A Prometheus key is
 *   `routes: [metrics]`.
 * - `namespaces`: the namespaces of the agents, teams and models it may call (globs: `team-*`).
 * - `targets`: which of those, spelt as clients name them: `agent/<name>` in the default namespace,
 *   `agent/<namespace>/<name>` in another, globs in either part (`agent/*`: the default namespace's agents;
 *   `team/prod/research-*`; `model/prod/*`); the kind may be `*` for any, and `*` alone is all.
 *
 * A target is allowed when its namespace matches `namespaces` (if set) and it matches one of `targets` (if
 * set). `*` stands for any run of characters within a name, `?` for one. What a key may not call it does not
 * see either: /v1/models, the MCP tool list and the A2A list leave it out.
 */
import type { ObjectRef } from '../../controller/api/index.ts'
import type { TargetKind } from '../../controller/store/index.ts'
import type { Limits } from './quotas.ts'

/**
 * The JSON-RPC codes of a request refused for its key (A2A and MCP): -32040 without a valid one, -32041 when
 * its scope leaves out what it asked, -32042 when its token cannot be checked now. Server errors no protocol here reserves: A2A's -32001 is TaskNotFound,
 * and MCP's SDK reads -32000 and -32001 as a closed connection and a timeout.
 */
export const UNAUTHENTICATED = -32040
export const FORBIDDEN = -32041
/** A token that could not be checked now (its issuer's keys cannot be fetched): retry. */
export const AUTH_UNAVAILABLE = -32042

export const ROUTE_GROUPS = ['openai', 'a2a', 'mcp', 'metrics', 'ui'] as const
/** The faces of the gateway a key may be allowed, each a group of routes. */
export type RouteGroup = (typeof ROUTE_GROUPS)[number]

export interface ScopeSpec {
  readonly routes?: readonly RouteGroup[]
  readonly namespaces?: readonly string[]
  readonly targets?: readonly string[]
}

const KIND_OF: Readonly<Record<string, TargetKind | '*'>> = {
  agent: 'Agent',
  team: 'Team',
  model: 'Model',
  '*': '*',
}

/** A name glob: what Kubernetes names hold (lowercase letters, digits, '-', '.'), `*` and `?`. */
const GLOB = /^[-a-z0-9.*?]{1,253}$/

interface TargetPattern {
  readonly kind: TargetKind | '*'
  /** Absent: the default namespace. */
  readonly namespace?: RegExp
  readonly name: RegExp
}

function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.*?]/g, (c) => (c === '*' ? '.*' : c === '?' ? '.' : '\\.'))
  return new RegExp(`^${body}$`)
}

/**
 * Checks a scope as read from a keys file or a Secret, throwing with the path (`at`) of what is wrong.
 */
export function parseScope(value: Record<string, unknown>, at: string): ScopeSpec | undefined {
  const list = (field: string): string[] | undefined => {
    const v = value[field]
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      throw new Error(`${at}.${field}: must be a list of strings`)
    return v as string[]
  }
  const routes = list('routes')
  routes?.forEach((r, i) => {
    if (!(ROUTE_GROUPS as readonly string[]).includes(r))
      throw new Error(`${at}.routes[${String(i)}]:${quoted(r)} is not one of ${ROUTE_GROUPS.join(', ')}`)
  })
  const namespaces = list('namespaces')
  namespaces?.forEach((n, i) => {
    if (!GLOB.test(n) || n.includes('.'))
      throw new Error(
        `${at}.namespaces[${String(i)}]:${quoted(n)} is not a namespace or a glob of one (lowercase letters, digits, '-', '*', '?')`,
      )
  })
  const targets = list('targets')
  targets?.forEach((t, i) => {
    if (targetPattern(t) === undefined)
      throw new Error(
        `${at}.targets[${String(i)}]:${quoted(t)} is not a target pattern: write <kind>/<name> or <kind>/<namespace>/<name>, the kind agent, team, model or *, names with globs (agent/*, team/prod/research-*), or * for all`,
      )
  })
  if (routes === undefined && namespaces === undefined && targets === undefined) return undefined
  return {
    ...(routes === undefined ? {} : { routes: routes as RouteGroup[] }),
    ...(namespaces === undefined ? {} : { namespaces }),
    ...(targets === undefined ? {} : { targets }),
  }
}

/**
 * A refused value, quoted when it could be nothing but a mistyped pattern. An API key (`ark_` and base64url)
 * pasted into the wrong field holds characters no pattern does, and is never repeated.
 */
function quoted(text: string): string {
  return /^[-a-z0-9.*?/]{1,80}$/.test(text) ? ` "${text}"` : ''
}

function targetPattern(text: string): TargetPattern | undefined {
  if (text === '*') return { kind: '*', namespace: /^/, name: /^/ }
  const parts = text.split('/')
  const kind = KIND_OF[parts[0] ?? '']
  if (kind === undefined || parts.length < 2 || parts.length > 3) return undefined
  const globs = parts.slice(1)
  if (globs.some((g) => !GLOB.test(g))) return undefined
  const [first = '', second] = globs
  return second === undefined
    ? { kind, name: globRegExp(first) }
    : { kind, namespace: globRegExp(first), name: globRegExp(second) }
}

/** Who a request comes from: a key's id and what it may do. */
export class Principal {
  readonly id: string
  /** True when the key may do everything (no scope): the checks below are then skipped. */
  readonly unrestricted: boolean
  readonly #routes: ReadonlySet<string> | undefined
  readonly #namespaces: readonly RegExp[] | undefined
  readonly #targets: readonly TargetPattern[] | undefined
  readonly #defaultNamespace: string
  /** How much the key may run (quotas.ts); absent: no limit of its own. */
  readonly limits: Limits | undefined

  /** What metrics count it under: the key's id; for JWT callers, whose subjects are unbounded, one label. */
  readonly label: string
  /**
   * Calls the listener once this key is revoked or rescoped (soon, if that happened while its request was on
   * its way); the function returned stops that. Its runs are then cancelled and its streams end. Absent for
   * callers nothing revokes (JWTs).
   */
  readonly onRevoked: ((listener: () => void) => () => void) | undefined
  /**
   * JWTs: calls the listener when the token expires. Its streams end then; runs admitted while it was valid
   * go on (a client that refreshes its token near the end must not lose an answer under way).
   */
  readonly onExpired: ((listener: () => void) => () => void) | undefined

  /** `defaultNamespace`: the namespace of targets named without one, as the catalog has it. */
  constructor(
    id: string,
    scope?: ScopeSpec,
    defaultNamespace = 'default',
    limits?: Limits,
    label: string = id,
    onRevoked?: (listener: () => void) => () => void,
    onExpired?: (listener: () => void) => () => void,
  ) {
    this.id = id
    this.label = label
    this.onRevoked = onRevoked
    this.onExpired = onExpired
    this.limits = limits
    this.#defaultNamespace = defaultNamespace
    this.unrestricted = scope === undefined
    this.#routes = scope?.routes === undefined ? undefined : new Set(scope.routes)
    this.#namespaces = scope?.namespaces?.map(globRegExp)
    this.#targets = scope?.targets?.map((t) => targetPattern(t)).filter((p) => p !== undefined)
  }

  /** How refusals name it: `the API key "ci"`, or `the token of jwt:alice`. */
  get named(): string {
    return this.label === this.id ? `the API key "${this.id}"` : `the token of ${this.id}`
  }

  allowsRoute(group: RouteGroup): boolean {
    return this.#routes === undefined || this.#routes.has(group)
  }

  /** Whether the key may call (and see) the agent, team or model `ref`. */
  allowsTarget(kind: TargetKind, ref: ObjectRef): boolean {
    if (this.unrestricted) return true
    if (this.#namespaces !== undefined && !this.#namespaces.some((n) => n.test(ref.namespace))) return false
    return (
      this.#targets === undefined ||
      this.#targets.some(
        (p) =>
          (p.kind === '*' || p.kind === kind) &&
          (p.namespace === undefined
            ? ref.namespace === this.#defaultNamespace
            : p.namespace.test(ref.namespace)) &&
          p.name.test(ref.name),
      )
    )
  }

  /**
   * Whether the key may call what a client named, when the name resolves to nothing: the kind and ref its
   * spelling stands for (`agent/<name>`, `agent/<ns>/<name>`, a bare agent name). A name the key could not
   * call is refused as such whether or not it exists, so that a scope does not tell what lies outside it.
   */
  allowsName(name: string): boolean {
    if (this.unrestricted) return true
    const defaultNamespace = this.#defaultNamespace
    const parts = name.split('/')
    if (parts.length === 1) return this.allowsTarget('Agent', { namespace: defaultNamespace, name })
    const kind = KIND_OF[parts[0] ?? '']
    if (kind === undefined || kind === '*' || parts.length > 3) return true
    const ref =
      parts.length === 2
        ? { namespace: defaultNamespace, name: parts[1] ?? '' }
        : { namespace: parts[1] ?? '', name: parts[2] ?? '' }
    return this.allowsTarget(kind, ref)
  }
}

/** The target as a refusal names it, with the key's id: never the key. */
export function notAllowedMessage(principal: Principal, target: string): string {
  return `${principal.named} may not call ${target.slice(0, 200)}: its scope (namespaces, targets) leaves it out`
}
