/**
 * What each request leaves behind: its `ark_http_*` metrics and, when asked for, its access-log line. Both
 * the app's middleware (app.ts) and the Node lane (openai/node-lane.ts) record through this, so that a
 * request counts the same whichever answered it.
 */
import type { Principal } from '../auth/scope.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'

export interface RequestRecord {
  /** A known method, or `_OTHER`. */
  readonly method: string
  /** The path without its query (which may carry what a client should not have put in a URL). */
  readonly path: string
  /** The route matched, or `unmatched`: a bounded label value. */
  readonly route: string
  readonly status: number
  readonly seconds: number
  /** The target a handler resolved (`agent/x`); empty when none. */
  readonly target: string
  readonly principal: Principal | undefined
}

export function requestRecorder(metrics: Metrics, access: Logger | undefined): (r: RequestRecord) => void {
  return (r) => {
    metrics.http({ method: r.method, route: r.route, status: r.status, target: r.target }, r.seconds)
    if (access === undefined) return
    access.info('request', {
      method: r.method,
      // At most 200 characters: it is client input.
      path: r.path.slice(0, 200),
      route: r.route,
      status: r.status,
      ms: Math.round(r.seconds * 10_000) / 10,
      ...(r.target === '' ? {} : { target: r.target }),
      // The key's id, never the key.
      ...(r.principal === undefined ? {} : { key: r.principal.id }),
    })
  }
}
