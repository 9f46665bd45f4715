/**
 * What a request must look like before any route sees it, for every protocol alike:
 *
 * - Host: a gateway bound to loopback serves only loopback names. Otherwise a web page the user visits could
 *   point a name it controls at 127.0.0.1 (DNS rebinding) and drive the gateway from the browser.
 * - Path: no dot segments (`..`, `.`), plain or percent-encoded. URL parsers resolve them (`/v1/%2e%2e/metrics`
 *   becomes `/metrics`), so a proxy rule that exposes only `/v1/` would expose everything.
 */

/**
 * `Host` values a gateway accepts: any; only loopback names and addresses; or loopback plus the names listed
 * (a leading dot, `.example.com`, also allows every name under it).
 */
export type AllowedHosts = 'any' | 'loopback' | readonly string[]

/** True for 127.0.0.0/8, ::1 and the names that always mean this machine (RFC 6761 `localhost`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (h === '::1' || h === '[::1]' || h === '0:0:0:0:0:0:0:1') return true
  return /^127(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(h)
}

/** The host name of a `Host` header, without its port; IPv6 literals keep their brackets. */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end < 0 ? h : h.slice(0, end + 1)
  }
  const colon = h.indexOf(':')
  return colon < 0 ? h : h.slice(0, colon)
}

/** Whether a request's `Host` header is one this gateway serves. A missing header is refused when restricted. */
export function hostAllowed(header: string | undefined, allowed: AllowedHosts): boolean {
  if (allowed === 'any') return true
  if (header === undefined || header === '') return false
  const name = hostName(header)
  if (isLoopbackHost(name)) return true
  if (allowed === 'loopback') return false
  return allowed.some((a) => a === name || (a.startsWith('.') && (name.endsWith(a) || name === a.slice(1))))
}

/** The default for a bind address: loopback binds serve loopback names only; other binds any name. */
export function defaultAllowedHosts(bind: string): AllowedHosts {
  return isLoopbackHost(bind) ? 'loopback' : 'any'
}

const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$|\?|#)/i

export const DOT_SEGMENT_MESSAGE =
  'the path holds a `.` or `..` segment (perhaps percent-encoded, %2e); ark does not resolve them, so that a proxy rule for one path prefix cannot reach another'

/** True when a raw request path holds a `.` or `..` segment, percent-encoded or not. */
export function hasDotSegment(path: string): boolean {
  return DOT_SEGMENT.test(path)
}
