/**
 * JWTs as bearer tokens, beside API keys: a token an identity provider signed, for this gateway's audience,
 * is let in as its subject, with the scope its `scope` (or `scp`) claim grants. The signing keys come from a
 * JWKS: a URL (fetched, cached, fetched again when a token names a key it has not seen, as providers rotate;
 * while the provider cannot be reached, the keys last fetched go on verifying, and with none yet the caller
 * gets a 503 rather than a 401: the token may be fine), or a file (read again when it changes; one that is gone or does not parse keeps the keys before it).
 * Verification is `jose`'s, and a token must carry `exp` and `sub`; a token verified once is remembered
 * until it expires (at most five minutes), so a client that reuses its token pays for the signature once.
 *
 * Scope: entries of the claim that start with `ark:` narrow what the token may do, as a key's scope does
 * (scope.ts): `ark:routes:openai`, `ark:namespaces:team-a`, `ark:targets:agent/*`; other entries are the
 * provider's and are ignored. A token with no `ark:` entry may do everything its audience allows.
 *
 * Who: `jwt:<sub>` owns its A2A tasks and MCP sessions; metrics count every JWT caller under one label
 * (`jwt`), since subjects are unbounded. Errors say what is wrong with a token (expired, wrong audience, bad
 * signature), never the token.
 */
import { readFile } from 'node:fs/promises'
import type * as Jose from 'jose'
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose'
import type { Logger } from '../log.ts'
import { redactedUrl } from '../log.ts'
import { followFile } from './follow-file.ts'
import { digestOf } from './keys.ts'
import { Principal, parseScope } from './scope.ts'

export interface JwtOptions {
  /** The `iss` tokens must carry. */
  readonly issuer: string
  /** The `aud` tokens must name: this gateway. */
  readonly audience: string
  /** Where the signing keys are. */
  readonly jwks: { readonly url: string } | { readonly file: string }
  /** The catalog's default namespace, for scope targets named without one. */
  readonly defaultNamespace?: string
  /** How often a JWKS file is looked at for changes (default 1 s). */
  readonly fileIntervalMs?: number
  /** How long keys fetched from a JWKS URL are used before they are fetched again (default 10 min). */
  readonly urlMaxAgeMs?: number
}

/** The label metrics give every JWT caller. */
export const JWT_LABEL = 'jwt'

const MAX_CACHED = 10_000
const MAX_CACHE_MS = 5 * 60_000
/** Leeway for the clocks of the token's issuer and this gateway (exp, nbf, iat). */
const CLOCK_TOLERANCE_S = 30
/** The longest delay a timer takes (about 24.8 days); longer ones are armed again. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Calls `listener` at `until` (epoch ms); the function returned stops that. */
function atExpiry(until: number, listener: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined
  const arm = () => {
    const left = until - Date.now()
    timer = setTimeout(left > MAX_TIMER_MS ? arm : listener, Math.max(0, Math.min(left, MAX_TIMER_MS)))
    // An open stream keeps the process alive, not its expiry.
    ;(timer as { unref?: () => void }).unref?.()
  }
  arm()
  return () => clearTimeout(timer)
}

/**
 * jose, loaded by the first JwtVerifier.start (every verifier is made there): a gateway without JWTs does not
 * carry it.
 */
let jose: typeof Jose

/** While a JWKS URL cannot be fetched, how often it is tried again (the keys before verify meanwhile). */
const OUTAGE_RETRY_MS = 5000
/** Tokens longer than this are not worth verifying. */
const MAX_TOKEN = 16_384

/** Whether a bearer token has a JWT's shape (three base64url parts); API keys never do. */
export function looksLikeJwt(token: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)
}

export class JwtVerifier {
  readonly #options: JwtOptions
  readonly #log: Logger
  #keys: JWTVerifyGetKey | undefined
  readonly #cache = new Map<string, { readonly principal: Principal; readonly until: number }>()
  /** Stops following a JWKS file. */
  #stop: () => void = () => {}

  private constructor(options: JwtOptions, log: Logger) {
    this.#options = options
    this.#log = log
  }

  /** A verifier whose keys are loaded (a JWKS file that cannot be read stops the start, saying why). */
  static async start(options: JwtOptions, log: Logger): Promise<JwtVerifier> {
    jose = await import('jose')
    const v = new JwtVerifier(options, log)
    const { jwks } = options
    if ('url' in jwks) {
      // Fetched on first use, kept for ten minutes, fetched again for a key id it has not seen: at most every
      // 5 s, so tokens naming made-up key ids cost the provider one fetch in 5 s.
      const remote = jose.createRemoteJWKSet(new URL(jwks.url), {
        timeoutDuration: 5000,
        cooldownDuration: 5000,
        cacheMaxAge: options.urlMaxAgeMs ?? 600_000,
      })
      // While the provider cannot be reached, nobody waits on it: the keys fetched before verify at once (or,
      // with none, the token is answered 503 at once), and it is asked again in the background every 5 s.
      const url = redactedUrl(jwks.url)
      let outage: { until: number; error: unknown; stale?: JWTVerifyGetKey; asking: boolean } | undefined
      /** Notes the outage (logged once) and gives the keys to verify with meanwhile, if any were fetched. */
      const down = (err: unknown): JWTVerifyGetKey | undefined => {
        if (outage === undefined)
          log.warn('JWKS cannot be fetched; the keys fetched before verify meanwhile, if any', {
            url,
            error: causeOf(err),
          })
        const last = remote.jwks()
        const stale = last === undefined ? undefined : jose.createLocalJWKSet(last)
        outage = {
          until: Date.now() + OUTAGE_RETRY_MS,
          error: err,
          asking: false,
          ...(stale === undefined ? {} : { stale }),
        }
        return stale
      }
      v.#keys = async (header, token) => {
        if (outage !== undefined) {
          const o = outage
          if (o.until <= Date.now() && !o.asking) {
            o.asking = true
            remote.reload().then(
              () => {
                outage = undefined
                log.info('JWKS fetched again', { url })
              },
              (err: unknown) => {
                if (isOutage(err)) down(err)
                else outage = undefined
              },
            )
          }
          if (o.stale === undefined) throw o.error
          return o.stale(header, token)
        }
        try {
          return await remote(header, token)
        } catch (err) {
          if (!isOutage(err)) throw err
          // An outage must not log everyone out. Keys the provider removed meanwhile are noticed once it
          // answers again.
          const stale = down(err)
          if (stale === undefined) throw err
          return stale(header, token)
        }
      }
    } else {
      const last = await readFile(jwks.file, 'utf8').catch((err: unknown) => {
        throw new Error(
          `--jwks-file ${jwks.file}: ${(err as { code?: string }).code === 'ENOENT' ? 'no such file' : String(err)}`,
          { cause: err },
        )
      })
      v.#keys = localSet(last, jwks.file)
      v.#stop = followFile(jwks.file, last, options.fileIntervalMs ?? 1000, {
        changed(text) {
          try {
            v.#keys = localSet(text, jwks.file)
            v.#cache.clear()
            log.info('JWKS reloaded', { file: jwks.file })
          } catch (err) {
            log.error('JWKS file refused; the keys before it stay', {
              file: jwks.file,
              error: err instanceof Error ? err.message : String(err),
            })
          }
        },
        gone() {
          log.error('JWKS file unreadable; the keys before it stay', { file: jwks.file })
        },
      })
    }
    return v
  }

  /**
   * Who the token is, or why it is refused (never quoting it); `unavailable` when the keys to tell could not
   * be fetched (the caller may retry).
   */
  async verify(token: string): Promise<Principal | { readonly error: string; readonly unavailable?: true }> {
    if (token.length > MAX_TOKEN) return { error: 'the token is too long' }
    const now = Date.now()
    // By digest: the cache holds at most MAX_CACHED small keys, whatever the tokens' size.
    const digest = digestOf(token)
    const cached = this.#cache.get(digest)
    if (cached !== undefined) {
      if (cached.until > now) return cached.principal
      this.#cache.delete(digest)
    }
    const keys = this.#keys
    if (keys === undefined) return { error: 'no signing keys are loaded' }
    let payload: Record<string, unknown>
    try {
      payload = (
        await jose.jwtVerify(token, keys, {
          issuer: this.#options.issuer,
          audience: this.#options.audience,
          // A token without an expiry would be a credential nothing could take back.
          requiredClaims: ['exp', 'sub'],
          clockTolerance: CLOCK_TOLERANCE_S,
        })
      ).payload
    } catch (err) {
      return isOutage(err) ? { error: reasonOf(err), unavailable: true } : { error: reasonOf(err) }
    }
    const sub = payload.sub
    if (typeof sub !== 'string' || sub === '' || sub.length > 256)
      return { error: 'the token has no subject (sub) of at most 256 characters' }
    let principal: Principal
    try {
      principal = new Principal(
        `jwt:${sub}`,
        scopeOf(payload),
        this.#options.defaultNamespace ?? 'default',
        undefined,
        JWT_LABEL,
        undefined,
        // The streams it holds open end when it expires (runs already admitted go on).
        (listener) => atExpiry((payload.exp as number) * 1000 + CLOCK_TOLERANCE_S * 1000, listener),
      )
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) }
    }
    const exp = (payload.exp as number) * 1000
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value ?? '')
    this.#cache.set(digest, { principal, until: Math.min(exp, now + MAX_CACHE_MS) })
    return principal
  }

  close(): void {
    this.#stop()
    this.#cache.clear()
    this.#log.debug('JWT verifier closed')
  }
}

function localSet(text: string, file: string): JWTVerifyGetKey {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new Error(`--jwks-file ${file}: not JSON`)
  }
  const keys = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new Error(`--jwks-file ${file}: must be a JWKS, {"keys": [...]}`)
  if (keys.some((k: unknown) => typeof k === 'object' && k !== null && 'd' in k))
    throw new Error(`--jwks-file ${file}: holds a private key (a "d" member): give it the public keys only`)
  return jose.createLocalJWKSet(doc as JSONWebKeySet)
}

/** The token's `ark:` scope entries, as a key's scope. */
function scopeOf(payload: Record<string, unknown>): ReturnType<typeof parseScope> {
  const raw = payload.scope ?? payload.scp
  const entries =
    typeof raw === 'string'
      ? raw.split(' ')
      : Array.isArray(raw)
        ? raw.filter((e): e is string => typeof e === 'string')
        : []
  const fields: Record<string, string[]> = {}
  for (const entry of entries) {
    const m = /^ark:(routes|namespaces|targets):(.+)$/.exec(entry)
    if (m === null) continue
    ;(fields[m[1] ?? ''] ??= []).push(m[2] ?? '')
  }
  return parseScope(fields, "the token's scope claim")
}

/**
 * Whether verification failed because the JWKS could not be fetched (timeout, a connection refused, a
 * non-200 or unparsable answer), rather than because of the token.
 */
function isOutage(err: unknown): boolean {
  if (err instanceof jose.errors.JWKSTimeout) return true
  // jose's generic error is what its JWKS fetch throws for a non-200 or unparsable answer; every verdict on
  // a token has a class of its own.
  if (err instanceof jose.errors.JOSEError) return err.code === 'ERR_JOSE_GENERIC'
  return true
}

/** What went wrong fetching the JWKS, for the log: the network error's code, or the message. */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause
  if (typeof cause?.code === 'string') return cause.code
  return err instanceof Error ? err.message : String(err)
}

function reasonOf(err: unknown): string {
  if (err instanceof jose.errors.JWTExpired) return 'the token has expired'
  if (err instanceof jose.errors.JWTClaimValidationFailed)
    return `the token's ${err.claim} claim is not what this gateway takes (${err.reason})`
  if (err instanceof jose.errors.JWSSignatureVerificationFailed)
    return "the token's signature does not verify"
  if (err instanceof jose.errors.JWKSNoMatchingKey) return 'no signing key of the JWKS matches the token'
  if (err instanceof jose.errors.JWKSTimeout) return 'the JWKS could not be fetched in time'
  if (err instanceof jose.errors.JOSEAlgNotAllowed || err instanceof jose.errors.JOSENotSupported)
    return "the token's algorithm is not supported"
  if (err instanceof jose.errors.JWSInvalid || err instanceof jose.errors.JWTInvalid)
    return 'the token is not a well-formed JWT'
  if (err instanceof jose.errors.JOSEError && err.code === 'ERR_JOSE_GENERIC')
    return 'the JWKS answered with something other than a key set'
  if (err instanceof jose.errors.JOSEError) return `the token was refused (${err.code})`
  return 'the JWKS could not be fetched'
}
