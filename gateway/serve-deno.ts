/**
 * Serving on Deno: the app's fetch behind Deno.serve. Deno.serve (2.9) has no header, request or idle
 * timeouts and no way to close one connection from the app: the app bounds request bodies and streams
 * itself (gateway/http/), and the rest needs Node or a proxy in front (README, "Exposing ark").
 */
import type { ServeFetch, ServeHandle, ServeOptions } from './serve.ts'

interface DenoServer {
  readonly addr: { readonly port: number }
  shutdown(): Promise<void>
}
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: () => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): DenoServer
}

export function serveDeno(fetch: ServeFetch, options: ServeOptions): Promise<ServeHandle> {
  const server = Deno.serve({ port: options.port, hostname: options.host, onListen: () => {} }, (request) =>
    fetch(request),
  )
  return Promise.resolve({ port: server.addr.port, close: () => server.shutdown() })
}
