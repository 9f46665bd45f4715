/**
 * Serving on Deno: the app's fetch behind Deno.serve. Deno.serve (2.9) has no header, request or idle
 * timeouts and no way to close one connection from the app: the app bounds request bodies and streams
 * itself (gateway/http/), and the rest needs Node or a proxy in front (README, "Exposing ark").
 */
import type { ServeFetch, ServeHandle, ServeOptions } from './serve.ts'
import { drainingResponse } from './serve.ts'

interface DenoServer {
  readonly addr: { readonly port: number }
  readonly finished: Promise<void>
  shutdown(): Promise<void>
}
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: () => void; signal?: AbortSignal },
    handler: (request: Request) => Response | Promise<Response>,
  ): DenoServer
}

export function serveDeno(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  // Aborting it closes the server at once, in-flight requests too: the end of a drain's grace.
  const abort = new AbortController()
  let draining = false
  let active = 0
  const server = Deno.serve(
    { port: options.port, hostname: options.host, onListen: () => {}, signal: abort.signal },
    async (request) => {
      if (draining) return drainingResponse()
      active++
      try {
        return await fetch(request)
      } finally {
        // Deno.serve waits for a streamed body itself on shutdown; this counts what was cut before it began.
        active--
      }
    },
  )
  return Promise.resolve({
    port: server.addr.port,
    close: async () => {
      abort.abort()
      await server.finished
    },
    drain: async (graceMs) => {
      draining = true
      let timer: ReturnType<typeof setTimeout> | undefined
      // shutdown() stops accepting and waits for requests in flight, streamed bodies included.
      const done = await Promise.race([
        server.shutdown().then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
      ])
      clearTimeout(timer)
      if (done) return { cut: 0 }
      const cut = Math.max(1, active)
      abort.abort()
      await server.finished
      return { cut }
    },
  })
}
