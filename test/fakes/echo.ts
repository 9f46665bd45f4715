/**
 * Upstreams that echo the credential they were sent, for the secret-canary tests: some real servers quote
 * the key in an error, a proxy may base64-encode the Authorization header it got, a URL may carry it
 * percent-encoded. A fake given an EchoReply answers with the value of one request header, in one of those
 * forms, in one place of its answer.
 */
import type { ServerResponse } from 'node:http'

export type EchoForm = 'raw' | 'base64' | 'base64url' | 'url' | 'form'

export type EchoPlace =
  /** A 2xx JSON answer whose text holds it. */
  | 'json'
  /** A 2xx answer that is not JSON. */
  | 'text'
  /** A 400 JSON error whose message, type and code hold it. */
  | 'error'
  /** A normal answer with the value in response headers (x-request-id / request-id, x-echo). */
  | 'header'
  /** Streams: an event whose text holds it. */
  | 'sse-data'
  /** Streams: an event that is not JSON: only the value. */
  | 'sse-raw'
  /** Streams: an error event that holds it. */
  | 'sse-error'
  /** Streams: an event whose text holds it, sent in two TCP writes split inside the value. */
  | 'sse-split'

export interface EchoReply {
  readonly echo: EchoPlace
  readonly form: EchoForm
  /** The request header whose value is echoed, lower case; by default the one that carries the key. */
  readonly header?: string
}

/** `value` as the upstream sends it back. */
export function encodeEcho(value: string, form: EchoForm): string {
  switch (form) {
    case 'raw':
      return value
    case 'base64':
      return Buffer.from(value).toString('base64')
    case 'base64url':
      return Buffer.from(value).toString('base64url')
    case 'url':
      return encodeURIComponent(value)
    case 'form':
      return new URLSearchParams({ v: value }).toString().slice(2)
  }
}

/**
 * Writes `text` in two TCP segments split in its middle (`at`), with a pause between them so that the
 * client reads them apart.
 */
export async function writeSplit(res: ServerResponse, text: string, at: number): Promise<void> {
  res.socket?.setNoDelay(true)
  res.write(text.slice(0, at))
  await new Promise((resolve) => setTimeout(resolve, 25))
  res.write(text.slice(at))
}
