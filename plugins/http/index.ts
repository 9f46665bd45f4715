// The built-in webhook plugin: ark's `http` Tools and ArkAgent inline tools send their requests through it, so a
// webhook is subject to the same host policy, time and size limits as any other plugin.
import { Host, Memory } from '@extism/as-pdk'
import '../lib/ark'

@external('extism:host/env', 'http_request')
declare function http_request(request: u64, body: u64): u64
@external('extism:host/env', 'http_status_code')
declare function http_status_code(): i32
@external('extism:host/env', 'length')
declare function length(offset: u64): u64

const NEWLINE: u8 = 10

/**
 * Input: Extism's HTTP request as JSON (`{"url","method","headers"}`), a newline, then the request body.
 * Output: the response status in decimal, a newline, then the response body.
 */
export function call(): i32 {
  const input = Host.input()
  let split = input.indexOf(NEWLINE)
  if (split < 0) split = input.length
  // Copies (slice, not subarray): the PDK stores from the start of the underlying buffer.
  const request = store(input.slice(0, split))
  const body: u64 = split + 1 < input.length ? store(input.slice(split + 1)).offset : 0
  const response = http_request(request.offset, body)
  const status = http_status_code()
  const head = Uint8Array.wrap(String.UTF8.encode(status.toString() + '\n'))
  const size = response == 0 ? 0 : i32(length(response))
  const out = new Uint8Array(head.length + size)
  out.set(head, 0)
  if (size > 0) out.set(new Memory(response, size).toUint8Array(), head.length)
  Host.output(out)
  return 0
}

function store(bytes: Uint8Array): Memory {
  const memory = Memory.allocate(bytes.length)
  memory.store(bytes)
  return memory
}
