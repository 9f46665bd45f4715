/**
 * API keys: who may call the gateway. A key is `ark_` and 43 base64url characters (32 random bytes). ark
 * never stores one: it keeps each key's SHA-256 digest under a key id, and a request's bearer token is
 * hashed and looked up. Key ids (never keys) are what logs and metrics name.
 *
 * Where the digests come from (sources.ts): a keys file (`--api-keys`), or a Secret on the cluster
 * (`--api-keys-secret`), each followed live: a new digest lets its key in at once, a removed one locks its
 * key out at once (rotation).
 */
import { hash, randomBytes } from 'node:crypto'
import { parse } from 'yaml'
import { parseLimits } from './quotas.ts'
import type { Limits } from './quotas.ts'
import { Principal, parseScope } from './scope.ts'
import type { ScopeSpec } from './scope.ts'

export interface ApiKeyEntry {
  /** A name for the key: logs and metrics say it instead of the key. */
  readonly id: string
  /** The key's SHA-256 digest, 64 lowercase hex digits. */
  readonly sha256: string
  /** What the key may do (scope.ts); absent: everything. */
  readonly scope?: ScopeSpec
  /** How much it may run (quotas.ts); absent: no limit of its own. */
  readonly limits?: Limits
}

/** What a keys file or Secret holds: the keys, and the limits of namespaces. */
export interface KeysConfig {
  readonly keys: readonly ApiKeyEntry[]
  readonly namespaces: ReadonlyMap<string, Limits>
}

const NO_NAMESPACES: ReadonlyMap<string, Limits> = new Map()

/** What a key may do, as one string: a change of it ends what the key holds open. */
const termsOf = (e: ApiKeyEntry): string => JSON.stringify([e.id, e.scope])

/**
 * A key's terms and who listens for their end: the runs and streams of requests let in on them. A set rather
 * than an AbortSignal every run follows: runs come and go by the thousand, and Node's AbortSignal.any keeps
 * a weak reference per run in a long-lived signal (measured at about 4 us a run).
 */
class Revocation {
  readonly terms: string
  readonly #listeners = new Set<() => void>()
  #revoked = false

  constructor(terms: string) {
    this.terms = terms
  }

  /** Calls `listener` at the revocation (soon, if it has happened); the function returned stops that. */
  listen(listener: () => void): () => void {
    if (this.#revoked) {
      queueMicrotask(listener)
      return () => {}
    }
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  revoke(): void {
    this.#revoked = true
    const listeners = [...this.#listeners]
    this.#listeners.clear()
    for (const listener of listeners) listener()
  }
}

const ID = /^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/
const DIGEST = /^[0-9a-f]{64}$/

/** Whether `text` may name a key (lowercase letters, digits, '-', '.', '_'; at most 63). */
export function isKeyId(text: string): boolean {
  return ID.test(text)
}

export function digestOf(key: string): string {
  // The one-shot form: half the time of createHash().update().digest(), and it is paid on every request.
  return hash('sha256', key, 'hex')
}

/** A new key and its digest (`ark keys new`). */
export function newKey(): { readonly key: string; readonly sha256: string } {
  const key = `ark_${randomBytes(32).toString('base64url')}`
  return { key, sha256: digestOf(key) }
}

/** The keys a gateway accepts now; replaced whole when its source changes. */
export class KeyRing {
  #byDigest: ReadonlyMap<string, Principal> = new Map()
  readonly #defaultNamespace: string

  /** `defaultNamespace`: the catalog's, which scopes' targets named without a namespace are in. */
  constructor(defaultNamespace = 'default') {
    this.#defaultNamespace = defaultNamespace
  }

  #entries: readonly ApiKeyEntry[] = []
  #namespaces: ReadonlyMap<string, Limits> = NO_NAMESPACES

  /** How many keys are accepted. */
  get size(): number {
    return this.#byDigest.size
  }

  /** The keys accepted now. */
  get entries(): readonly ApiKeyEntry[] {
    return this.#entries
  }

  /** The namespaces' limits now. */
  get namespaces(): ReadonlyMap<string, Limits> {
    return this.#namespaces
  }

  /** The limits of `namespace`, if it has any. */
  namespaceLimits(namespace: string): Limits | undefined {
    return this.#namespaces.get(namespace)
  }

  replace(entries: readonly ApiKeyEntry[], namespaces: ReadonlyMap<string, Limits> = NO_NAMESPACES): void {
    // One revocation per key and terms (id and scope), kept across reloads that leave them as they are: every
    // request let in on a key's terms holds it, however many reloads ago it was let in, and is told when the
    // key is removed or rescoped. New limits apply to runs to come, not to those running.
    const before = this.#revocations
    const revocations = new Map<string, Revocation>()
    for (const e of entries) {
      const terms = termsOf(e)
      const kept = before.get(e.sha256)
      revocations.set(e.sha256, kept !== undefined && kept.terms === terms ? kept : new Revocation(terms))
    }
    this.#byDigest = new Map(
      entries.map((e) => {
        const revocation = revocations.get(e.sha256) as Revocation
        return [
          e.sha256,
          new Principal(e.id, e.scope, this.#defaultNamespace, e.limits, e.id, (listener) =>
            revocation.listen(listener),
          ),
        ]
      }),
    )
    this.#entries = entries
    this.#namespaces = namespaces
    this.#revocations = revocations
    for (const [sha256, r] of before) if (revocations.get(sha256) !== r) r.revoke()
  }

  /** Each accepted key's revocation, by digest. */
  #revocations: ReadonlyMap<string, Revocation> = new Map()

  /** Who `token` is the key of, or undefined. */
  verify(token: string): Principal | undefined {
    // Keys are short; anything long is not one, and is not worth hashing.
    if (token.length === 0 || token.length > 256) return undefined
    return this.#byDigest.get(digestOf(token))
  }
}

/**
 * A keys file:
 *
 *     keys:
 *       - id: ci
 *         sha256: 5f2b...   # of the key, never the key itself: `ark keys new` prints both
 *       - id: team-a
 *         sha256: 9c1e...
 *         namespaces: [team-a]          # a scope (scope.ts): optional, each field narrows
 *         targets: [agent/*, team/*]
 *         routes: [openai, a2a]
 *         limits: { requestsPerSecond: 5, burst: 10, tokensPerDay: 1000000 }   # quotas.ts
 *     namespaces:                       # limits of namespaces, whoever calls
 *       team-a: { requestsPerSecond: 50, tokensPerDay: 20000000 }
 *
 * Throws with the path of what is wrong (`keys[1].sha256: must be 64 hex digits`), never with the file's
 * text: a key pasted into it by mistake (as a `key:` field, a field name, a digest that is not one, or text
 * YAML cannot read) must not reach a log. YAML's own messages quote the source: its warnings are not printed
 * (logLevel error) and its errors are replaced by their code and position.
 */
export function parseKeysFile(text: string): KeysConfig {
  let doc: unknown
  try {
    doc = parse(text, { maxAliasCount: 0, logLevel: 'error' })
  } catch (err) {
    const { code, linePos } = err as { code?: unknown; linePos?: { line: number; col: number }[] }
    const pos = linePos?.[0]
    const at = pos === undefined ? '' : ` at line ${String(pos.line)}, column ${String(pos.col)}`
    // A new error without \`cause\`: YAML's error holds the source excerpt.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`not YAML (${typeof code === 'string' ? code : 'syntax error'}${at})`)
  }
  const keys = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new Error('keys: must be a list of {id, sha256}')
  const { namespaces } = doc as Record<string, unknown>
  const stray = Object.keys(doc as object).find((k) => k !== 'keys' && k !== 'namespaces')
  if (stray !== undefined)
    throw new Error(
      `${/^[a-z]{1,20}$/.test(stray) ? `${stray}: ` : ''}a top-level field other than keys and namespaces`,
    )
  return {
    keys: checked(
      keys.map((k: unknown, i) => {
        const at = `keys[${String(i)}]`
        if (typeof k !== 'object' || k === null) throw new Error(`${at}: must be {id, sha256}`)
        const { id, sha256, routes, namespaces, targets, limits, ...rest } = k as Record<string, unknown>
        const extra = Object.keys(rest)
        // Named only when it is a short word a person would write; anything else could be a key.
        const first = extra[0] ?? ''
        if (extra.includes('key'))
          throw new Error(
            `${at}: a \`key\` field: the file holds digests, never keys (\`ark keys new\` prints the digest)`,
          )
        if (extra.length > 0)
          throw new Error(
            `${at}: a field other than id, sha256, routes, namespaces, targets and limits${/^[a-z]{1,20}$/.test(first) ? ` (${first})` : ''}`,
          )
        return {
          at,
          id,
          sha256,
          scope: parseScope({ routes, namespaces, targets }, at),
          limits: parseLimits(limits, `${at}.limits`),
        }
      }),
    ),
    namespaces: namespaceLimits(namespaces, 'namespaces'),
  }
}

/** `namespaces:` of a keys file (or a Secret's `_namespaces`): each namespace's limits. */
function namespaceLimits(value: unknown, at: string): ReadonlyMap<string, Limits> {
  if (value === undefined || value === null) return NO_NAMESPACES
  if (typeof value !== 'object' || Array.isArray(value))
    throw new Error(`${at}: must be a mapping of namespace names to their limits`)
  const out = new Map<string, Limits>()
  for (const [name, limits] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
      throw new Error(`${at}: a name that is not a namespace's`)
    const parsed = parseLimits(limits, `${at}.${name}`)
    if (parsed !== undefined) out.set(name, parsed)
  }
  return out
}

/**
 * A Secret's data as keys: each data key is a key id, its value the key's digest, or a YAML (or JSON) mapping
 * of `sha256`, a scope and limits (`{sha256: 5f2b..., namespaces: [team-a]}`). An entry is named by its id when
 * that is a valid one, else by its position: a key put where its id belongs must not be repeated. A value is
 * never repeated either, nor is YAML's reading of it. The data key `_namespaces` (no key id starts with `_`)
 * holds namespaces' limits, as a keys file's `namespaces:`.
 */
export function keysFromSecret(data: Readonly<Record<string, string>>): KeysConfig {
  const { _namespaces: namespaces, ...keys } = data
  let nsDoc: unknown
  if (namespaces !== undefined) {
    try {
      nsDoc = parse(namespaces, { maxAliasCount: 0, logLevel: 'error' })
    } catch {
      throw new Error('data._namespaces: not YAML')
    }
  }
  return {
    keys: keysOfSecret(keys),
    namespaces: namespaceLimits(nsDoc, 'data._namespaces'),
  }
}

function keysOfSecret(data: Readonly<Record<string, string>>): ApiKeyEntry[] {
  return checked(
    Object.entries(data).map(([id, value], i) => {
      const at = ID.test(id) ? `data.${id}` : `data entry ${String(i + 1)} (its name is not a valid key id)`
      const text = value.trim()
      if (DIGEST.test(text)) return { at, id, sha256: text }
      const neither = `${at}: must be the key's SHA-256 digest (64 lowercase hex digits), or a YAML mapping of sha256 and a scope`
      let doc: unknown
      try {
        doc = parse(text, { maxAliasCount: 0, logLevel: 'error' })
      } catch {
        throw new Error(neither)
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(neither)
      const { sha256, routes, namespaces, targets, limits, ...rest } = doc as Record<string, unknown>
      if (Object.keys(rest).length > 0)
        throw new Error(`${at}: a field other than sha256, routes, namespaces, targets and limits`)
      return {
        at,
        id,
        sha256,
        scope: parseScope({ routes, namespaces, targets }, at),
        limits: parseLimits(limits, `${at}.limits`),
      }
    }),
  )
}

function checked(
  entries: readonly {
    at: string
    id: unknown
    sha256: unknown
    scope?: ScopeSpec | undefined
    limits?: Limits | undefined
  }[],
): ApiKeyEntry[] {
  const ids = new Set<string>()
  const digests = new Set<string>()
  return entries.map(({ at, id, sha256, scope, limits }) => {
    if (typeof id !== 'string' || !ID.test(id))
      throw new Error(
        `${at}: the id must be a name of lowercase letters, digits, '-', '.' or '_' (at most 63)`,
      )
    if (typeof sha256 !== 'string' || !DIGEST.test(sha256))
      throw new Error(`${at}.sha256: must be the key's SHA-256 digest, 64 lowercase hex digits`)
    if (ids.has(id)) throw new Error(`${at}.id: "${id}" is used twice`)
    if (digests.has(sha256)) throw new Error(`${at}.sha256: the same key is listed twice`)
    ids.add(id)
    digests.add(sha256)
    return {
      id,
      sha256,
      ...(scope === undefined ? {} : { scope }),
      ...(limits === undefined ? {} : { limits }),
    }
  })
}
