/**
 * Outbound HTTP for untrusted Wasm plugins: the host decides whether a request a plugin asks for may go out,
 * and performs it. Default deny: a tool reaches only the hosts its platform team listed in `allowedHosts`.
 *
 * What the checks guard against, beyond "is this host listed":
 * - the cloud metadata service and other link-local, multicast or unspecified addresses, which no grant
 *   opens, in any spelling (IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms included);
 * - DNS rebinding: every address a name resolves to is checked, and the connection goes to the checked
 *   address (the name is sent only as Host and TLS SNI), so DNS cannot answer differently in between;
 * - loopback and private ranges reached through a name or a `*` grant: loopback needs a loopback pattern
 *   (`localhost`, `127.0.0.1`, `[::1]`), private ranges need the host named explicitly;
 * - redirects: followed by hand, every hop checked again as if the plugin had asked for it.
 *
 * Error messages name hosts, addresses and ports, never header values, URL paths or queries: plugins put
 * credentials in all three, and these messages end up in logs and back in the plugin.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { request as httpRequest } from 'node:http'
import type { RequestOptions } from 'node:https'
import { request as httpsRequest } from 'node:https'

export interface HttpRequestSpec {
  readonly url: string
  /** Any HTTP token; the caller supplies the GET default. */
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: Uint8Array
}

export interface HttpResponseData {
  readonly status: number
  /** Names lower-cased; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** The request may not go out; `message` says which host/address and why, without header values. */
export class NetDenied extends Error {
  override readonly name = 'NetDenied'
}

/** The request went out and failed: connection refused, timeout, response too large, too many redirects. */
export class NetFailed extends Error {
  override readonly name = 'NetFailed'
}

export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

export interface NetPolicyOptions {
  /**
   * Patterns: `api.example.com`, `*.example.com` (subdomains only, not the apex), `127.0.0.1`, `[::1]`, with
   * optional `:port` (`localhost:8080`); `*` alone means any public host. Case-insensitive.
   */
  readonly allowedHosts: readonly string[]
  /** Resolver, replaceable in tests; default node:dns/promises lookup of every address, in resolver order. */
  readonly lookup?: (hostname: string) => Promise<readonly ResolvedAddress[]>
}

export interface FetchOptions {
  /** For the whole exchange: resolution, every redirect hop, and reading the body. */
  readonly timeoutMs: number
  readonly maxResponseBytes: number
  readonly signal?: AbortSignal
  /** Default 5. */
  readonly maxRedirects?: number
}

const DEFAULT_MAX_REDIRECTS = 5
const REDIRECTS = new Set([301, 302, 303, 307, 308])
/** Statuses (besides answers to HEAD) that never carry a body, whatever content-length says. */
const NO_BODY = new Set([204, 304])
/** setTimeout fires at once for longer delays (and warns); a timeout that long means "none" anyway. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Request headers the host sets or drops, whatever the plugin asks. `host` above all: it is the name the
 * allowlist was checked against, and a plugin choosing it could reach any virtual host behind a granted
 * address (a shared ingress). The length and framing headers are derived from the body (a plugin's own
 * would let it frame a second request into the connection); the connection-level ones would switch
 * protocols or wait for a `100 Continue` this client never waits for.
 */
const HOST_OWNED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
  'expect',
])
/** Sent only to the origin the plugin addressed; a redirect elsewhere must not carry them along. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization']
/** Describe the body; dropped with it when a redirect turns the request into a GET. */
const BODY_HEADERS = ['content-type', 'content-encoding', 'content-language', 'content-location']

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** What Node (and HTTP) refuse in a header value: controls other than tab, CR and LF above all. */
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/

type AddressClass =
  { readonly kind: 'denied'; readonly reason: string } | { readonly kind: 'loopback' | 'private' | 'public' }

interface Pattern {
  /** `any` is `*`; `suffix` is `*.example.com`, held as `.example.com`; `exact` a name or an address. */
  readonly kind: 'any' | 'suffix' | 'exact'
  readonly host: string
  readonly port: number | undefined
  /** A loopback address or `localhost`: the only grants that open loopback. */
  readonly loopback: boolean
}

export class NetPolicy {
  readonly #patterns: readonly Pattern[]
  readonly #lookup: (hostname: string) => Promise<readonly ResolvedAddress[]>

  constructor(options: NetPolicyOptions) {
    // A bad pattern is a configuration error; failing here says so, instead of denying requests at runtime.
    this.#patterns = options.allowedHosts.map(parsePattern)
    this.#lookup = options.lookup ?? defaultLookup
  }

  /**
   * Throws NetDenied when the URL may not be fetched (NetFailed when its name does not resolve); returns
   * the address to connect to, pinned, so DNS cannot change between the check and the connection.
   */
  async check(url: URL): Promise<ResolvedAddress> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new NetDenied(`${url.protocol} URLs may not be fetched; only http: and https:`)
    }
    if (url.username !== '' || url.password !== '') {
      throw new NetDenied(
        'URLs with credentials (user:pass@) may not be fetched; send an authorization header',
      )
    }
    if (this.#patterns.length === 0) {
      throw new NetDenied(`this tool grants no hosts, so ${url.host} may not be reached (set allowedHosts)`)
    }
    const host = canonicalHost(url.hostname)
    const literal = parseAddress(host)
    const denied = alwaysDenied(host)
    if (denied !== undefined) throw new NetDenied(`${url.hostname} is ${denied}; plugins may never reach it`)

    const port = effectivePort(url)
    const hostMatches = this.#patterns.filter((p) => matchesHost(p, host, literal !== undefined))
    const matches = hostMatches.filter((p) => p.port === undefined || p.port === port)
    if (matches.length === 0) {
      const ports = hostMatches.map((p) => String(p.port))
      throw new NetDenied(
        ports.length === 0
          ? `${url.hostname} is not in this tool's allowedHosts`
          : `${url.hostname} is granted on port ${ports.join(', ')} only, not ${String(port)}`,
      )
    }
    const loopbackGranted = matches.some((p) => p.loopback)
    const privateGranted = matches.some((p) => p.kind !== 'any')

    const addresses =
      literal !== undefined ? [{ address: host, family: literal.family }] : await this.#resolve(host)
    let first: ResolvedAddress | undefined
    for (const resolved of addresses) {
      const address = canonicalHost(resolved.address)
      const parsed = parseAddress(address)
      if (parsed === undefined)
        throw new NetFailed(`resolving ${url.hostname} gave something not an IP address`)
      const subject = literal !== undefined ? `${url.hostname} is` : `${url.hostname} resolves to ${address},`
      const cls = classify(parsed)
      if (cls.kind === 'denied') throw new NetDenied(`${subject} ${cls.reason}; plugins may never reach it`)
      if (cls.kind === 'loopback' && !loopbackGranted) {
        throw new NetDenied(
          `${subject} a loopback address; only localhost or a loopback address in allowedHosts grants loopback`,
        )
      }
      if (cls.kind === 'private' && !privateGranted) {
        throw new NetDenied(
          `${subject} a private address, which '*' does not grant; name the host in allowedHosts`,
        )
      }
      first ??= { address, family: parsed.family }
    }
    if (first === undefined) throw new NetFailed(`${url.hostname} resolves to no address`)
    return first
  }

  /**
   * check() then the request, over node:http(s) to the checked address. Redirects (301/302/303/307/308) are
   * followed by hand, up to `maxRedirects`, every hop checked again.
   */
  async fetch(request: HttpRequestSpec, options: FetchOptions): Promise<HttpResponseData> {
    const { timeoutMs, maxResponseBytes, signal } = options
    const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS
    signal?.throwIfAborted()
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      throw new NetDenied('the request URL is not an absolute URL')
    }
    let method = requestMethod(request.method)
    const headers = requestHeaders(request.headers)
    let body = request.body

    // One signal for everything below: the deadline and the caller's signal both end up here.
    const controller = new AbortController()
    const timer = setTimeout(
      () => {
        controller.abort(new NetFailed(`${url.host} did not answer within ${String(timeoutMs)} ms`))
      },
      Math.min(timeoutMs, MAX_TIMER_MS),
    )
    const onAbort = () => controller.abort(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      let from: URL | undefined
      for (let redirects = 0; ; redirects++) {
        let pinned: ResolvedAddress
        try {
          pinned = await untilAborted(this.check(url), controller.signal)
        } catch (err) {
          if (err instanceof NetDenied && from !== undefined) {
            throw new NetDenied(`${err.message} (reached through a redirect from ${from.host})`)
          }
          throw err
        }
        const response = await exchange(
          url,
          pinned,
          method,
          headers,
          body,
          maxResponseBytes,
          controller.signal,
        )
        const location = response.headers.location
        if (!REDIRECTS.has(response.status) || location === undefined) return response
        if (redirects >= maxRedirects) {
          throw new NetFailed(`more than ${String(maxRedirects)} redirects (the last from ${url.host})`)
        }
        let next: URL
        try {
          next = new URL(location, url)
        } catch {
          throw new NetFailed(`${url.host} redirected to something that is not a URL`)
        }
        // As fetch does: 303 means "GET the answer there"; 301/302 turn other methods into GET because
        // browsers always have; 307/308 repeat the request as it was.
        const toGet =
          response.status === 303
            ? method !== 'GET' && method !== 'HEAD'
            : (response.status === 301 || response.status === 302) && method !== 'GET' && method !== 'HEAD'
        if (toGet) {
          method = 'GET'
          body = undefined
          for (const name of BODY_HEADERS) headers.delete(name)
        }
        if (next.origin !== url.origin) for (const name of CREDENTIAL_HEADERS) headers.delete(name)
        from = url
        url = next
      }
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  async #resolve(host: string): Promise<readonly ResolvedAddress[]> {
    try {
      return await this.#lookup(host)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new NetFailed(
        `could not resolve ${host}: ${typeof code === 'string' ? code : err instanceof Error ? err.message : 'failed'}`,
        { cause: err },
      )
    }
  }
}

/**
 * Why this address is never reachable from a plugin, or undefined: link-local (169.254.0.0/16, fe80::/10),
 * cloud metadata (169.254.169.254, fd00:ec2::254, 100.100.100.200, and the name metadata.google.internal),
 * unspecified (0.0.0.0, ::), the rest of 0.0.0.0/8 and 240.0.0.0/4, multicast, broadcast; also in
 * IPv4-mapped/compatible/translated IPv6 forms (::ffff:169.254.169.254) and NAT64 64:ff9b::/96.
 * Accepts any spelling the URL parser accepts (brackets, `0xa9.254.169.254`, a zone id); other names are
 * undefined.
 */
export function alwaysDenied(address: string): string | undefined {
  const host = canonicalHost(address)
  if (host === 'metadata.google.internal') return 'a cloud metadata name'
  const parsed = parseAddress(host)
  if (parsed === undefined) return undefined
  const cls = classify(parsed)
  return cls.kind === 'denied' ? cls.reason : undefined
}

async function defaultLookup(hostname: string): Promise<readonly ResolvedAddress[]> {
  // Every address, in the resolver's order (`order: 'verbatim'` is the non-deprecated `verbatim: true`):
  // all of them are checked, the first is the one connected to.
  const results = await dnsLookup(hostname, { all: true, order: 'verbatim' })
  return results.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }))
}

function parsePattern(source: string): Pattern {
  const invalid = () =>
    new TypeError(
      `allowedHosts: ${JSON.stringify(source)} is not a host pattern (host, *.domain, 1.2.3.4 or [::1], each with an optional :port; or *)`,
    )
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(source.trim())
  if (m === null) throw invalid()
  const hostPart = m[1] ?? ''
  const port = m[2] === undefined ? undefined : Number(m[2])
  if (port !== undefined && (port < 1 || port > 65535)) throw invalid()
  if (hostPart === '*') return { kind: 'any', host: '*', port, loopback: false }
  const wildcard = hostPart.startsWith('*.')
  const rest = wildcard ? hostPart.slice(2) : hostPart
  // Anything that would make the URL parser read a different host (userinfo, path, escapes) is refused.
  if (rest === '' || /[*/?#@\\%\s]/.test(rest)) throw invalid()
  let host: string
  try {
    host = canonicalHost(new URL(`http://${rest}/`).hostname)
  } catch {
    throw invalid()
  }
  const address = parseAddress(host)
  if (wildcard) {
    // `*.0.0.1` would match 127.0.0.1; subdomains exist only under names.
    if (address !== undefined || /\.\d+$|^\d+$/.test(host)) throw invalid()
    return { kind: 'suffix', host: `.${host}`, port, loopback: false }
  }
  const loopback = host === 'localhost' || (address !== undefined && classify(address).kind === 'loopback')
  return { kind: 'exact', host, port, loopback }
}

function matchesHost(pattern: Pattern, host: string, isAddress: boolean): boolean {
  switch (pattern.kind) {
    case 'any':
      return true
    case 'suffix':
      return !isAddress && host.length > pattern.host.length && host.endsWith(pattern.host)
    case 'exact':
      return host === pattern.host
  }
}

function effectivePort(url: URL): number {
  if (url.port !== '') return Number(url.port)
  return url.protocol === 'https:' ? 443 : 80
}

/**
 * A host as compared and classified: lower case, no brackets, zone id or trailing dot, and addresses in
 * their one canonical form, read as the URL parser (and getaddrinfo) read them: `0x7f.1` is 127.0.0.1.
 */
function canonicalHost(text: string): string {
  let host = text.trim().toLowerCase()
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  if (host.includes(':')) {
    host = host.replace(/%.*$/, '')
    try {
      return new URL(`http://[${host}]/`).hostname.slice(1, -1)
    } catch {
      return host
    }
  }
  if (host.endsWith('.')) host = host.slice(0, -1)
  // Only what could be a numeric IPv4 spelling goes through the parser; names are left as they are.
  if (!/^[0-9a-fx.]+$/.test(host)) return host
  try {
    return new URL(`http://${host}/`).hostname
  } catch {
    return host
  }
}

type ParsedAddress =
  { readonly family: 4; readonly bytes: IPv4 } | { readonly family: 6; readonly groups: readonly number[] }

type IPv4 = readonly [number, number, number, number]

/** Canonical forms only (see canonicalHost): dotted decimal without leading zeros, compressed IPv6 hex. */
function parseAddress(host: string): ParsedAddress | undefined {
  const v4 = parseIPv4(host)
  if (v4 !== undefined) return { family: 4, bytes: v4 }
  const groups = parseIPv6(host)
  return groups === undefined ? undefined : { family: 6, groups }
}

function parseIPv4(text: string): IPv4 | undefined {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text)
  if (m === null) return undefined
  const bytes = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] as const
  return bytes.every((b) => b <= 255) ? bytes : undefined
}

function parseIPv6(text: string): number[] | undefined {
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const part = (s: string | undefined): number[] | undefined => {
    if (s === undefined || s === '') return []
    const out: number[] = []
    for (const group of s.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(group)) return undefined
      out.push(parseInt(group, 16))
    }
    return out
  }
  const head = part(halves[0])
  const tail = part(halves[1])
  if (head === undefined || tail === undefined) return undefined
  if (halves.length === 1) return head.length === 8 ? head : undefined
  const zeros = 8 - head.length - tail.length
  return zeros < 1 ? undefined : [...head, ...new Array<number>(zeros).fill(0), ...tail]
}

function classify(address: ParsedAddress): AddressClass {
  return address.family === 4 ? classify4(address.bytes) : classify6(address.groups)
}

function classify4([a, b, c, d]: IPv4): AddressClass {
  if (a === 169 && b === 254 && c === 169 && d === 254) return denied('a cloud metadata address')
  if (a === 100 && b === 100 && c === 100 && d === 200) return denied('a cloud metadata address')
  if (a === 169 && b === 254) return denied('a link-local address')
  if (a === 0) return denied(b === 0 && c === 0 && d === 0 ? 'an unspecified address' : 'a reserved address')
  if (a === 255 && b === 255 && c === 255 && d === 255) return denied('a broadcast address')
  if (a >= 224 && a <= 239) return denied('a multicast address')
  if (a >= 240) return denied('a reserved address')
  if (a === 127) return { kind: 'loopback' }
  if (
    a === 10 ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127)
  ) {
    return { kind: 'private' }
  }
  return { kind: 'public' }
}

function classify6(g: readonly number[]): AddressClass {
  const at = (i: number) => g[i] ?? 0
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0)
  if (zeroUpTo(8)) return denied('an unspecified address')
  if (zeroUpTo(7) && at(7) === 1) return { kind: 'loopback' }
  // IPv6 spellings of an IPv4 address reach that IPv4 address: mapped ::ffff:0:0/96, compatible ::/96,
  // translated ::ffff:0:0:0/96, and NAT64 64:ff9b::/96 where the network translates.
  const embeds =
    (zeroUpTo(5) && at(5) === 0xffff) ||
    zeroUpTo(6) ||
    (zeroUpTo(4) && at(4) === 0xffff && at(5) === 0) ||
    (at(0) === 0x64 && at(1) === 0xff9b && g.slice(2, 6).every((x) => x === 0))
  if (embeds) {
    const v4: IPv4 = [at(6) >> 8, at(6) & 0xff, at(7) >> 8, at(7) & 0xff]
    const inner = classify4(v4)
    return inner.kind === 'denied' ? denied(`${inner.reason} (${v4.join('.')} inside IPv6)`) : inner
  }
  if (at(0) === 0xfd00 && at(1) === 0x0ec2 && g.slice(2, 7).every((x) => x === 0) && at(7) === 0x254) {
    return denied('a cloud metadata address')
  }
  if ((at(0) & 0xffc0) === 0xfe80) return denied('a link-local address')
  if ((at(0) & 0xff00) === 0xff00) return denied('a multicast address')
  // Unique local fc00::/7, and the site-local fec0::/10 it replaced.
  if ((at(0) & 0xfe00) === 0xfc00 || (at(0) & 0xffc0) === 0xfec0) return { kind: 'private' }
  return { kind: 'public' }
}

function denied(reason: string): AddressClass {
  return { kind: 'denied', reason }
}

function requestMethod(method: string): string {
  if (!TOKEN.test(method)) throw new NetDenied('the request method is not an HTTP token')
  const upper = method.toUpperCase()
  // A tunnel is not a request this client can complete, and would carry the plugin past the allowlist.
  if (upper === 'CONNECT') throw new NetDenied('CONNECT requests may not be made')
  return upper
}

/** Lower-cased names; values checked here so Node never echoes one back in an error. */
function requestHeaders(headers: Readonly<Record<string, string>>): Map<string, string> {
  const out = new Map<string, string>()
  for (const [rawName, value] of Object.entries(headers)) {
    if (!TOKEN.test(rawName)) throw new NetDenied('a request header name is not an HTTP token')
    const name = rawName.toLowerCase()
    if (BAD_HEADER_VALUE.test(value)) {
      throw new NetDenied(`request header ${name} has a value with characters HTTP does not allow`)
    }
    if (HOST_OWNED_HEADERS.has(name)) continue
    const previous = out.get(name)
    out.set(name, previous === undefined ? value : `${previous}, ${value}`)
  }
  return out
}

/** `promise`, or the signal's reason as soon as it aborts (the promise is left to settle unheard). */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  let onAbort: () => void = () => undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * One request/response to the pinned address. A redirect that will be followed resolves without its body
 * (the connection is dropped instead of read: agent-less, it is never reused).
 */
function exchange(
  url: URL,
  pinned: ResolvedAddress,
  method: string,
  headers: ReadonlyMap<string, string>,
  body: Uint8Array | undefined,
  maxResponseBytes: number,
  signal: AbortSignal,
): Promise<HttpResponseData> {
  return new Promise<HttpResponseData>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error)
      return
    }
    const https = url.protocol === 'https:'
    const name = canonicalHost(url.hostname)
    const outgoing: OutgoingHttpHeaders = Object.fromEntries(headers)
    outgoing.host = url.host
    if (body !== undefined) outgoing['content-length'] = String(body.byteLength)
    const options: RequestOptions = {
      host: pinned.address,
      family: pinned.family,
      port: effectivePort(url),
      path: url.pathname + url.search,
      method,
      headers: outgoing,
      // A fresh connection per request: no pool to key by address and name, and no proxy from the
      // environment (Node 24's NODE_USE_ENV_PROXY applies to the global agent only), which would connect
      // by name and undo the pinning.
      agent: false,
    }
    if (https) {
      // SNI and the certificate check go by the name, the TCP connection by the address. Node would
      // otherwise derive the name from the Host header; an address as servername is refused outright on
      // Deno (and deprecated on Node), so an IP-literal URL sends no SNI and is checked against its IP.
      options.servername = parseAddress(name) === undefined ? name : ''
    }

    let settled = false
    let response: IncomingMessage | undefined
    const done = () => {
      settled = true
      signal.removeEventListener('abort', onAbort)
    }
    const fail = (err: Error) => {
      if (settled) return
      done()
      req.destroy()
      response?.destroy()
      reject(err)
    }
    const target = name === pinned.address ? url.host : `${url.host} (${pinned.address})`
    const failed = (what: string) => (err: Error) => {
      fail(
        signal.aborted
          ? (signal.reason as Error)
          : new NetFailed(`${target}: ${what}: ${err.message}`, { cause: err }),
      )
    }
    const onAbort = () => fail(signal.reason as Error)

    const send = https ? httpsRequest : httpRequest
    let req: ReturnType<typeof send>
    try {
      req = send(options)
    } catch (err) {
      reject(new NetFailed(`${url.host}: the request could not be made`, { cause: err }))
      return
    }
    signal.addEventListener('abort', onAbort, { once: true })
    // Listeners stay for good: destroying the request after settling still emits errors, unheard.
    req.on('error', failed('the request failed'))
    req.on('response', (res) => {
      response = res
      res.on('error', failed('the response broke off'))
      const status = res.statusCode ?? 0
      const responseHeaders = headersOf(res)
      if (REDIRECTS.has(status) && responseHeaders.location !== undefined) {
        done()
        resolve({ status, headers: responseHeaders, body: new Uint8Array(0) })
        req.destroy()
        res.destroy()
        return
      }
      const tooLarge = () =>
        new NetFailed(`${url.host}: response body exceeds ${String(maxResponseBytes)} bytes`)
      const declared = Number(responseHeaders['content-length'] ?? '0')
      if (method !== 'HEAD' && !NO_BODY.has(status) && declared > maxResponseBytes) {
        fail(tooLarge())
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > maxResponseBytes) fail(tooLarge())
        else chunks.push(chunk)
      })
      res.on('end', () => {
        if (settled) return
        done()
        // A Uint8Array of its own: Buffer.concat may hand out a slice of a shared pool, whose `.buffer`
        // holds other requests' bytes.
        const bytes = new Uint8Array(size)
        let offset = 0
        for (const chunk of chunks) {
          bytes.set(chunk, offset)
          offset += chunk.length
        }
        resolve({ status, headers: responseHeaders, body: bytes })
      })
      res.on('close', () => {
        fail(new NetFailed(`${target}: the connection closed before the response ended`))
      })
    })
    req.end(body)
  })
}

/** Lower-cased names, repeats joined with `, ` (set-cookie too: the record has one string per name). */
function headersOf(res: IncomingMessage): Record<string, string> {
  const out = new Map<string, string>()
  const raw = res.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase()
    const value = raw[i + 1] ?? ''
    const previous = out.get(name)
    out.set(name, previous === undefined ? value : `${previous}, ${value}`)
  }
  // fromEntries defines own properties: a header named __proto__ stays a header.
  return Object.fromEntries(out)
}
