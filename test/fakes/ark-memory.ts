/**
 * ARK's memory service as ark-broker implements it (its routes and pagination; ark-cluster-memory's older
 * `{messages}` answer on request): it stands in for the service an ARK Memory's address points at, which
 * cannot run here. It records every request, so a test sees what ark sent.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { headersOf, readBody, sendJson } from './http.ts'

export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string>
  readonly body: string
}

export interface Record_ {
  timestamp: string
  conversation_id: string
  query_id: string
  message: unknown
  sequence: number
}

/** ARK's memory service, as ark-broker implements it (pagination.ts, routes/memory). */
export class FakeMemoryService {
  readonly seen: Seen[] = []
  records: Record_[] = []
  #sequence = 0
  /** Items a page holds at most, below the client's limit, to make it page (ark-broker: the limit, <= 1000). */
  pageCap = 1000
  /** Answer as ark-cluster-memory did: `{messages}`, all at once. */
  legacy = false
  /** Takes over the next requests when set. */
  override: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  readonly server: Server
  url = ''

  constructor() {
    this.server = createServer((req, res) => void this.#handle(req, res))
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${String((this.server.address() as AddressInfo).port)}`
  }

  reset(): void {
    this.seen.length = 0
    this.records = []
    this.pageCap = 1000
    this.legacy = false
    this.override = undefined
  }

  store(conversation: string, message: unknown): void {
    this.records.push({
      timestamp: new Date().toISOString(),
      conversation_id: conversation,
      query_id: 'q',
      message,
      sequence: ++this.#sequence,
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req)
    this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: headersOf(req), body })
    if (this.override !== undefined) {
      this.override(req, res)
      return
    }
    const url = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'POST' && url.pathname === '/conversations') {
      sendJson(res, 201, { conversation_id: crypto.randomUUID() })
    } else if (req.method === 'POST' && url.pathname === '/messages') {
      const b = JSON.parse(body) as { conversation_id?: unknown; query_id?: unknown; messages?: unknown }
      for (const field of ['conversation_id', 'query_id'] as const) {
        if (typeof b[field] !== 'string') {
          sendJson(res, 400, { error: `${field} is required` })
          return
        }
      }
      if (!Array.isArray(b.messages)) {
        sendJson(res, 400, { error: 'messages is required' })
        return
      }
      for (const m of b.messages) this.store(b.conversation_id as string, m)
      res.writeHead(200).end()
    } else if (req.method === 'GET' && url.pathname === '/messages') {
      const conversation = url.searchParams.get('conversation_id')
      let items = this.records.filter((r) => conversation === null || r.conversation_id === conversation)
      if (this.legacy) {
        sendJson(res, 200, { messages: items })
        return
      }
      const limit = Number(url.searchParams.get('limit') ?? 100)
      if (!(limit >= 1 && limit <= 1000)) {
        sendJson(res, 400, { error: 'limit cannot exceed 1000' })
        return
      }
      const total = items.length
      const cursor = url.searchParams.get('cursor')
      if (cursor !== null) items = items.filter((r) => r.sequence > Number(cursor))
      const page = items.slice(0, Math.min(limit, this.pageCap))
      const hasMore = items.length > page.length
      sendJson(res, 200, {
        items: page,
        total,
        hasMore,
        ...(hasMore ? { nextCursor: page.at(-1)?.sequence } : {}),
      })
    } else {
      sendJson(res, 404, { error: 'not found' })
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }
}
