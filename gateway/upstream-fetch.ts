import type { Fetch } from './runtime/provider.ts'

/**
 * The HTTP client for upstream model calls on whichever runtime this is: Deno's native fetch, or on Node the
 * node:http one in fetch-node.ts (Node's global fetch costs several times more CPU per call). Loads only the
 * adapter it returns, as `serve` does.
 */
export async function upstreamFetch(): Promise<Fetch> {
  if ('Deno' in globalThis) return fetch
  return (await import('./fetch-node.ts')).nodeFetch
}
