import type { Fetch } from './runtime/provider.ts'
import { injectIntoHeaders, tracer } from './trace/tracing.ts'

/**
 * The HTTP client for upstream model calls on whichever runtime this is: Deno's native fetch, or on Node the
 * node:http one in fetch-node.ts (Node's global fetch costs several times more CPU per call). Loads only the
 * adapter it returns, as `serve` does. With tracing on (started before this is called), each call carries the
 * trace context of the span it is made in (`traceparent`), so that the upstream's spans join the trace.
 */
export async function upstreamFetch(): Promise<Fetch> {
  const plain: Fetch = 'Deno' in globalThis ? fetch : (await import('./fetch-node.ts')).nodeFetch
  return tracer() === undefined ? plain : tracedFetch(plain)
}

/** `fetch` with the active span's `traceparent` and `tracestate` added to every request's headers. */
export function tracedFetch(fetch: Fetch): Fetch {
  return (input, init = {}) => {
    const headers = new Headers(init.headers)
    injectIntoHeaders(headers)
    return fetch(input, { ...init, headers })
  }
}
