/**
 * Requests handed to an app through @hono/node-server's request listener, the adapter `ark dev` and
 * `ark gateway` serve with on Node (gateway/serve-node.ts), without a socket: a node:http IncomingMessage
 * built here, and a ServerResponse with no socket, which keeps what it would have sent (status line, headers,
 * body) in memory.
 *
 * So an in-process measure pays what a served request pays in the app and the adapter (its lightweight
 * Request and Response, headers written as a record, Node's serialization of them), and none of what it
 * pays in the kernel and the HTTP parser, which is the same for any two apps and is the noisiest part here.
 *
 * The adapter replaces the global Request and Response with its own, as it does in a server: call this only
 * in a process (or worker thread) of its own.
 */
import { getRequestListener } from '@hono/node-server'
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'

export interface InjectedRequest {
  readonly method: string
  /** Path and query. */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface InjectedResponse {
  readonly status: number
  /** What the socket would have been sent: the status line, the headers and the body. */
  readonly raw: string
}

/** Wire sizes and shapes are the adapter's; the body is checked by the caller. */
export function nodeInjector(
  fetch: (request: Request) => Response | Promise<Response>,
): (request: InjectedRequest) => Promise<InjectedResponse> {
  const listener = getRequestListener((request) => fetch(request))
  return async (r) => {
    const incoming = new IncomingMessage(new Socket())
    incoming.method = r.method
    incoming.url = r.url
    incoming.httpVersion = '1.1'
    incoming.httpVersionMajor = 1
    incoming.httpVersionMinor = 1
    const headers: Record<string, string> = {
      ...r.headers,
      'content-length': String(Buffer.byteLength(r.body)),
    }
    incoming.headers = headers
    incoming.rawHeaders = Object.entries(headers).flat()
    incoming.push(r.body)
    // As Node's parser marks a whole message: otherwise the message counts as aborted when it is destroyed,
    // and Node builds an error (a stack trace) for each request that no server pays.
    incoming.complete = true
    incoming.push(null)
    const outgoing = new ServerResponse(incoming)
    await listener(incoming, outgoing)
    // Without a socket, what would have been written stays queued on the response.
    const queued = (outgoing as unknown as { outputData?: { data: string | Uint8Array }[] }).outputData ?? []
    return {
      status: outgoing.statusCode,
      raw: queued.map((q) => (typeof q.data === 'string' ? q.data : Buffer.from(q.data).toString())).join(''),
    }
  }
}
