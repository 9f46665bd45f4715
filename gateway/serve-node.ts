/** Serving on Node: the app's fetch behind @hono/node-server. */
import { serve } from '@hono/node-server'
import type { ServeHandle, ServeOptions } from './serve.ts'

export function serveNode(
  fetch: (request: Request) => Response | Promise<Response>,
  options: ServeOptions,
): Promise<ServeHandle> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port: options.port, hostname: options.host }, (info) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            // Keep-alive connections would hold close() open until clients hang up.
            if ('closeAllConnections' in server) server.closeAllConnections()
          }),
      })
    })
    server.once('error', reject)
  })
}
