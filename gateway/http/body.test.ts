import { describe, expect, it } from 'vitest'
import { readJson } from './body.ts'

const limits = { maxBytes: 64, timeoutMs: 60_000 }
const json = { 'content-type': 'application/json' }

type Body = string | Uint8Array | ReadableStream<Uint8Array>

function request(body: Body, headers: Record<string, string> = json): Request {
  return new Request('http://127.0.0.1/x', { method: 'POST', headers, body, duplex: 'half' })
}

describe('readJson', () => {
  it('parses a JSON body', async () => {
    expect(await readJson(request('{"a":[1]}'), limits)).toEqual({ value: { a: [1] } })
    const typed = request('{}', { 'content-type': 'application/vnd.api+json; charset=utf-8' })
    expect(await readJson(typed, limits)).toEqual({ value: {} })
  })

  it('refuses bodies that are not declared JSON before reading them', async () => {
    for (const headers of [
      {},
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/jsonx' },
    ] as Record<string, string>[]) {
      const r = await readJson(request('{}', headers), limits)
      expect(r, JSON.stringify(headers)).toMatchObject({
        refusal: { status: 415, code: 'unsupported_media_type' },
      })
    }
  })

  it('says what is wrong: too large, not UTF-8, empty, not JSON', async () => {
    const cases: [Body, number, string][] = [
      ['x'.repeat(65), 413, 'request_too_large'],
      [new Uint8Array([0x7b, 0xff, 0x7d]), 400, 'invalid_encoding'],
      ['  ', 400, 'invalid_json'],
      ['{"a":', 400, 'invalid_json'],
    ]
    for (const [body, status, code] of cases)
      expect(await readJson(request(body), limits)).toMatchObject({ refusal: { status, code } })
  })

  it('bounds a streamed body of unknown length, and one that never ends', async () => {
    const endless = new ReadableStream<Uint8Array>({
      pull: (c) => c.enqueue(new Uint8Array(1024)),
    })
    expect(await readJson(request(endless), limits)).toMatchObject({ refusal: { status: 413 } })
    const trickle = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode('{')) })
    const slow = await readJson(request(trickle), { ...limits, timeoutMs: 20 })
    expect(slow).toMatchObject({ refusal: { status: 408, code: 'request_timeout' } })
  })
})
