import type { Parsed } from './http/body.ts'
import type { LaneDeps } from './openai/node-lane.ts'

/**
 * What a runtime adapter passes the app beside each request (Hono's `c.env`): ways to act on the client's
 * connection that a Web-standard Response cannot express.
 */
export interface ConnectionBindings {
  /** Closes the connection now (Node). Deno.serve offers no such thing: absent there. */
  readonly drop?: () => void
  /**
   * The request's JSON body, when the adapter has read and parsed it already by http/body.ts's rules (the
   * Node lane, serve-node.ts, reads a chat body to see whether it is its own before handing it on).
   */
  readonly body?: Parsed
}

/** The app, as the adapters call it. */
export type ServeFetch = (request: Request, env?: ConnectionBindings) => Response | Promise<Response>

/** What both runtime adapters take and give. */
export interface ServeOptions {
  readonly port: number
  readonly host: string
  /** Connection bounds (Node; Deno.serve offers none of these, see serve-deno.ts). */
  readonly timeouts?: Partial<ServeTimeouts>
  /**
   * Passthrough calls answered beside the app, on node:http directly (openai/node-lane.ts says which and
   * why). Node only: Deno serves everything through the app.
   */
  readonly lane?: LaneDeps
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
  /** Closes at once: requests in flight are cut. */
  close(): Promise<void>
  /**
   * Closes gracefully: no new connection is accepted, a new request on a kept-alive one gets 503 with
   * `Connection: close` (its client retries elsewhere), and requests in flight, streams included, get up to
   * `graceMs` to finish; what is left then is cut. Resolves with how many were cut.
   */
  drain(graceMs: number): Promise<{ readonly cut: number }>
}

/**
 * `body`, with `ended` called once when it has been read through, failed or been cancelled: how an adapter
 * whose server does not say when a streamed answer is done counts it in flight until then.
 */
export function onBodyEnd(body: ReadableStream<Uint8Array>, ended: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  let done = false
  const end = () => {
    if (done) return
    done = true
    ended()
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await reader.read()
          if (next.done) {
            end()
            controller.close()
          } else controller.enqueue(next.value)
        } catch (err) {
          end()
          controller.error(err)
        }
      },
      cancel(reason) {
        end()
        return reader.cancel(reason)
      },
    },
    { highWaterMark: 0 },
  )
}

/** The body of the answer to a request that arrives while the server drains (503, Connection: close). */
export const DRAINING_BODY = JSON.stringify({
  error: {
    message: 'this gateway is shutting down; retry, and another replica will answer',
    type: 'service_unavailable',
    param: null,
    code: 'shutting_down',
  },
})

export function drainingResponse(): Response {
  return new Response(DRAINING_BODY, {
    status: 503,
    headers: { 'content-type': 'application/json', connection: 'close', 'retry-after': '1' },
  })
}

/** Serves `fetch` on whichever runtime this is. */
export async function serve(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  if ('Deno' in globalThis) return (await import('./serve-deno.ts')).serveDeno(fetch, options)
  return (await import('./serve-node.ts')).serveNode(fetch, options)
}
