/**
 * What a runtime adapter passes the app beside each request (Hono's `c.env`): ways to act on the client's
 * connection that a Web-standard Response cannot express.
 */
export interface ConnectionBindings {
  /** Closes the connection now (Node). Deno.serve offers no such thing: absent there. */
  readonly drop?: () => void
}

/** The app, as the adapters call it. */
export type ServeFetch = (request: Request, env?: ConnectionBindings) => Response | Promise<Response>

/** What both runtime adapters take and give. */
export interface ServeOptions {
  readonly port: number
  readonly host: string
  /** Connection bounds (Node; Deno.serve offers none of these, see serve-deno.ts). */
  readonly timeouts?: Partial<ServeTimeouts>
}

export interface ServeTimeouts {
  /** From a connection's start to the end of a request's headers, ms. */
  readonly headersMs: number
  /** From a request's start to the end of its body, ms. */
  readonly requestMs: number
  /** A keep-alive connection with no request in flight, ms. */
  readonly idleMs: number
}

export const SERVE_DEFAULTS: ServeTimeouts = { headersMs: 10_000, requestMs: 30_000, idleMs: 5_000 }

export interface ServeHandle {
  /** The port bound (useful with port 0). */
  readonly port: number
  close(): Promise<void>
}

/** Serves `fetch` on whichever runtime this is. */
export async function serve(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  if ('Deno' in globalThis) return (await import('./serve-deno.ts')).serveDeno(fetch, options)
  return (await import('./serve-node.ts')).serveNode(fetch, options)
}
