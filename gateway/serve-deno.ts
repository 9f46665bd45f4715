/**
 * Serving on Deno: the app's fetch behind Deno.serve. Deno.serve (2.9) has no header, request or idle
 * timeouts and no way to close one connection from the app: the app bounds request bodies and streams
 * itself (gateway/http/), and the rest needs Node or a proxy in front (README, "Exposing ark").
 */
import type { ServeFetch, ServeHandle, ServeOptions } from './serve.ts'
import { drainingResponse, onBodyEnd } from './serve.ts'

interface DenoServer {
  readonly addr: { readonly port: number }
  readonly finished: Promise<void>
}
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: () => void; signal?: AbortSignal },
    handler: (request: Request) => Response | Promise<Response>,
  ): DenoServer
}

export function serveDeno(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  // Aborting it closes the server at once, in-flight requests too: close(), and the end of a drain's grace.
  // (Not Deno's shutdown(): once it has begun, aborting the server throws from inside Deno, uncaught.)
  const abort = new AbortController()
  let draining = false
  let active = 0
  /** Told when the last request in flight ends, while a drain waits for that. */
  let idle: (() => void) | undefined
  const ended = () => {
    active--
    if (active === 0) idle?.()
  }
  const server = Deno.serve(
    { port: options.port, hostname: options.host, onListen: () => {}, signal: abort.signal },
    async (request) => {
      if (draining) return drainingResponse()
      active++
      let response: Response
      try {
        response = await fetch(request)
      } catch (err) {
        ended()
        throw err
      }
      // A streamed answer (SSE) is in flight until its body ends, and a drain waits for it (or cuts and
      // counts it). Only those: asking any other Response for its body would make a stream of a plain one.
      const body = response.headers.get('content-type')?.startsWith('text/event-stream')
        ? response.body
        : null
      if (body === null) {
        ended()
        return response
      }
      return new Response(onBodyEnd(body, ended), response)
    },
  )
  return Promise.resolve({
    port: server.addr.port,
    close: async () => {
      abort.abort()
      await server.finished
    },
    drain: async (graceMs) => {
      // Deno.serve cannot stop accepting without ending everything: until the grace is over, a new request
      // gets 503 shutting_down with Connection: close, and requests in flight go on.
      draining = true
      let timer: ReturnType<typeof setTimeout> | undefined
      if (active > 0)
        await new Promise<void>((resolve) => {
          idle = resolve
          timer = setTimeout(resolve, graceMs)
        })
      clearTimeout(timer)
      const cut = active
      abort.abort()
      await server.finished
      return { cut }
    },
  })
}
