/**
 * Keeping configured secrets (API keys, Secret-backed header values, URL credentials) out of everything ark
 * writes: response bodies and headers, streams, error messages, logs, status. An upstream may echo a key back
 * whole, base64-encoded (a `Basic`/`Bearer` header it decoded, or encoded again), URL-encoded, or inside a
 * JSON string; each of those forms is searched for.
 *
 * A Redactor is built once per Model (per provider config) from all of its secret values, and then searches
 * every body, chunk and message with one multi-pattern pass (Wu-Manber: a window that jumps over text no
 * pattern can start in), never a regex per call. A stream variant holds back, at the end of each
 * chunk, only the bytes that could be the start of a pattern, so a secret split across chunks is still
 * found while output that cannot be one flows on at once.
 */

export const REDACTED = '[REDACTED]'

/**
 * Secrets shorter than this are not searched for: a shorter value would redact ordinary words and numbers
 * (a header `X-Env: prod`), and no API key or token is this short. Every form searched for (a base64 core
 * of an 8-byte secret is 10 characters) is at least as long.
 */
export const MIN_SECRET_LENGTH = 8

const encoder = new TextEncoder()
const REDACTED_BYTES = encoder.encode(REDACTED)

/**
 * The forms of one secret that an upstream may send back, deduplicated: as is, JSON-escaped,
 * URL-encoded (encodeURIComponent, lower-case hex, form encoding with `+`, encodeURI), and the core of its
 * base64 and base64url encodings at each of the three alignments it can have inside a longer encoding
 * (`Bearer <key>` encoded whole): the characters that depend on the secret's bytes alone. Empty when the
 * secret is too short.
 */
export function secretForms(secret: string): string[] {
  const s = secret.trim()
  if (s.length < MIN_SECRET_LENGTH) return []
  const forms = new Set<string>([s, JSON.stringify(s).slice(1, -1)])
  const uri = encodeURIComponent(s)
  forms.add(uri)
  forms.add(uri.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()))
  forms.add(uri.replaceAll('%20', '+'))
  forms.add(new URLSearchParams({ s }).toString().slice(2))
  forms.add(encodeURI(s))
  const bytes = encoder.encode(s)
  for (let align = 0; align < 3; align++) {
    const padded = new Uint8Array(align + bytes.length)
    padded.set(bytes, align)
    // Character i of an encoding carries bits 6i..6i+5 of the input: keep those within the secret's bits.
    const from = Math.ceil((8 * align) / 6)
    const to = Math.floor((8 * (align + bytes.length)) / 6)
    const core = base64(padded).slice(from, to)
    forms.add(core)
    forms.add(core.replaceAll('+', '-').replaceAll('/', '_'))
  }
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH)
}

function base64(bytes: Uint8Array): string {
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary)
}

/**
 * Patterns indexed for a Wu-Manber search: every pattern is at least m units long (the shortest one's
 * length, MIN_SECRET_LENGTH at least, 20 and more for real keys), so a window of m units slides over the
 * input and the pair of units at its end says how far it may jump without skipping a pattern's first m
 * units. On ordinary text most pairs occur in no pattern and the window jumps m-1 units; only where a pair
 * could end a pattern's first m units are patterns compared.
 */
interface Index<P> {
  /** The window: the length of the shortest pattern (at most 256, so that jumps fit a byte). */
  readonly m: number
  /** Safe jump by the hashed pair of units that ends the window (0: compare patterns here). */
  readonly shift: Uint8Array
  /** Patterns by (first unit & 0xff), longest first, so the first that matches is the longest. */
  readonly byFirst: readonly (readonly P[] | undefined)[]
  /** Length of the longest pattern, in units. */
  readonly maxLength: number
}

/** The hash of a pair of units, for the shift table (collisions only make jumps shorter). */
const pair = (a: number, b: number) => (((a & 0xff) << 4) ^ (b & 0xff)) & 0xfff

function indexOf<P extends string | Uint8Array>(
  patterns: readonly P[],
  unit: (p: P, i: number) => number,
): Index<P> {
  let m = 256
  for (const p of patterns) m = Math.min(m, p.length)
  const shift = new Uint8Array(4096).fill(m - 1)
  const byFirst: P[][] = []
  let maxLength = 0
  for (const p of [...patterns].sort((a, b) => b.length - a.length)) {
    for (let q = 1; q < m; q++) {
      const h = pair(unit(p, q - 1), unit(p, q))
      shift[h] = Math.min(shift[h] as number, m - 1 - q)
    }
    ;(byFirst[unit(p, 0) & 0xff] ??= []).push(p)
    maxLength = Math.max(maxLength, p.length)
  }
  return { m, shift, byFirst, maxLength }
}

const charAt = (p: string, i: number) => p.charCodeAt(i)
const byteAt = (p: Uint8Array, i: number) => p[i] ?? 0

/** Where a match was found: start and length; `start` is -1 when there is none. */
interface Match {
  start: number
  length: number
}

export class Redactor {
  /** Redacts nothing: for providers without secrets. */
  static readonly none = new Redactor([])

  /** A redactor for these secret values (undefined and too-short ones are ignored). */
  static of(secrets: Iterable<string | undefined>): Redactor {
    const values = new Set<string>()
    for (const s of secrets) if (s !== undefined && s.trim().length >= MIN_SECRET_LENGTH) values.add(s.trim())
    return values.size === 0 ? Redactor.none : new Redactor([...values])
  }

  /**
   * One redactor for the secrets of several (the logger's, over every live Model's). Private fields, so
   * that the values never show in a dump of a provider.
   */
  static union(redactors: Iterable<Redactor>): Redactor {
    const values: string[] = []
    for (const r of redactors) values.push(...r.#secrets)
    return Redactor.of(values)
  }

  readonly #secrets: readonly string[]
  /** True when there is nothing to search for; every method then returns its input. */
  readonly empty: boolean
  readonly #text: Index<string>
  readonly #bytes: Index<Uint8Array>

  private constructor(secrets: readonly string[]) {
    this.#secrets = secrets
    const forms = [...new Set(secrets.flatMap(secretForms))]
    this.empty = forms.length === 0
    this.#text = indexOf(forms, charAt)
    this.#bytes = indexOf(
      forms.map((f) => encoder.encode(f)),
      byteAt,
    )
  }

  /** Longest pattern, in bytes: a stream holds back fewer bytes than this. */
  get maxBytes(): number {
    return this.#bytes.maxLength
  }

  /** `text` with every secret form replaced by `[REDACTED]`; the same string when there was none. */
  text(text: string): string {
    if (this.empty) return text
    return redactText(this.#text, text, text.length).out
  }

  /** `data` with every secret form replaced; the same array (no copy) when there was none. */
  bytes(data: Uint8Array): Uint8Array {
    if (this.empty) return data
    return redactBytes(this.#bytes, data, data.length).out
  }

  /** For text that arrives in pieces (streamed answer deltas). */
  textStream(): TextRedactStream {
    return new TextRedactStream(this.#text, this.empty)
  }

  /** For bytes that arrive in chunks (a response body). */
  byteStream(): ByteRedactStream {
    return new ByteRedactStream(this.#bytes, this.empty)
  }
}

/**
 * A stream of text: `push` returns what may go out now (possibly ''), holding back a tail that could be the
 * start of a secret form; `end` returns the rest.
 */
export class TextRedactStream {
  readonly #index: Index<string>
  readonly #empty: boolean
  #carry = ''

  constructor(index: Index<string>, empty: boolean) {
    this.#index = index
    this.#empty = empty
  }

  push(piece: string): string {
    if (this.#empty) return piece
    const text = this.#carry === '' ? piece : this.#carry + piece
    const hold = holdText(this.#index, text)
    const { out, end } = redactText(this.#index, text, hold)
    this.#carry = text.slice(end)
    return out
  }

  end(): string {
    const rest = this.#carry
    this.#carry = ''
    return rest === '' ? '' : redactText(this.#index, rest, rest.length).out
  }
}

/** A stream of bytes, as TextRedactStream. A chunk without secrets or held bytes goes out uncopied. */
export class ByteRedactStream {
  readonly #index: Index<Uint8Array>
  readonly #empty: boolean
  #carry: Uint8Array | undefined

  constructor(index: Index<Uint8Array>, empty: boolean) {
    this.#index = index
    this.#empty = empty
  }

  push(chunk: Uint8Array): Uint8Array {
    if (this.#empty) return chunk
    let data = chunk
    if (this.#carry !== undefined) {
      data = new Uint8Array(this.#carry.length + chunk.length)
      data.set(this.#carry)
      data.set(chunk, this.#carry.length)
      this.#carry = undefined
    }
    const hold = holdBytes(this.#index, data)
    const { out, end } = redactBytes(this.#index, data, hold)
    // A copy: the caller may reuse the chunk's buffer.
    if (end < data.length) this.#carry = data.slice(end)
    return out
  }

  end(): Uint8Array {
    const rest = this.#carry
    this.#carry = undefined
    return rest === undefined ? new Uint8Array(0) : redactBytes(this.#index, rest, rest.length).out
  }
}

// -------------------------------------------------------------------------------------------------------
// The search. Text and bytes have the same algorithm in two copies, each monomorphic, so that the loop over
// the input stays a tight one: per position, one bit test on the first two units; patterns are compared only
// where that hits (for ordinary text, rarely).

/** The leftmost, then longest, match starting in [from, limit) (a match may extend past limit). */
function findText(index: Index<string>, s: string, from: number, limit: number, m: Match): void {
  const { m: w, shift, byFirst } = index
  const n = s.length
  // i is the last unit of the window [i - w + 1, i].
  const last = Math.min(limit + w - 1, n)
  m.start = -1
  for (let i = from + w - 1; i < last;) {
    const jump = shift[pair(s.charCodeAt(i - 1), s.charCodeAt(i))] as number
    if (jump > 0) {
      i += jump
      continue
    }
    const start = i - w + 1
    const list = byFirst[s.charCodeAt(start) & 0xff]
    if (list !== undefined) {
      for (const p of list) {
        if (s.startsWith(p, start)) {
          m.start = start
          m.length = p.length
          return
        }
      }
    }
    i++
  }
}

/**
 * Replaces the matches that start before `limit` and returns the text up to where it may go out: `limit`,
 * or the end of a match that ran past it.
 */
function redactText(index: Index<string>, s: string, limit: number): { out: string; end: number } {
  const m: Match = { start: -1, length: 0 }
  let out = ''
  let pos = 0
  for (;;) {
    findText(index, s, pos, limit, m)
    if (m.start < 0) break
    out += s.slice(pos, m.start) + REDACTED
    pos = m.start + m.length
  }
  const end = Math.max(pos, limit)
  if (pos === 0) return { out: end === s.length ? s : s.slice(0, end), end }
  return { out: out + s.slice(pos, end), end }
}

/**
 * Where the held-back tail of `s` starts: the first position in its last maxLength-1 units from which the
 * rest of `s` is a proper prefix of some pattern (a pattern that may yet complete, or a match that a longer
 * pattern may yet extend); s.length when there is none.
 */
function holdText(index: Index<string>, s: string): number {
  const n = s.length
  const { byFirst } = index
  for (let i = Math.max(0, n - index.maxLength + 1); i < n; i++) {
    const list = byFirst[s.charCodeAt(i) & 0xff]
    if (list === undefined) continue
    const rest = n - i
    next: for (const p of list) {
      if (p.length <= rest) break // longest first: the rest are shorter still
      for (let j = 0; j < rest; j++) if (s.charCodeAt(i + j) !== p.charCodeAt(j)) continue next
      return i
    }
  }
  return n
}

function findBytes(index: Index<Uint8Array>, s: Uint8Array, from: number, limit: number, m: Match): void {
  const { m: w, shift, byFirst } = index
  const n = s.length
  const last = Math.min(limit + w - 1, n)
  m.start = -1
  for (let i = from + w - 1; i < last;) {
    const jump = shift[pair(s[i - 1] as number, s[i] as number)] as number
    if (jump > 0) {
      i += jump
      continue
    }
    const start = i - w + 1
    const list = byFirst[s[start] as number]
    if (list !== undefined) {
      next: for (const p of list) {
        const len = p.length
        if (start + len > n) continue
        for (let j = 1; j < len; j++) if (s[start + j] !== p[j]) continue next
        m.start = start
        m.length = len
        return
      }
    }
    i++
  }
}

function redactBytes(
  index: Index<Uint8Array>,
  s: Uint8Array,
  limit: number,
): { out: Uint8Array; end: number } {
  const m: Match = { start: -1, length: 0 }
  const parts: Uint8Array[] = []
  let pos = 0
  for (;;) {
    findBytes(index, s, pos, limit, m)
    if (m.start < 0) break
    parts.push(s.subarray(pos, m.start), REDACTED_BYTES)
    pos = m.start + m.length
  }
  const end = Math.max(pos, limit)
  if (parts.length === 0) return { out: end === s.length ? s : s.subarray(0, end), end }
  parts.push(s.subarray(pos, end))
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return { out, end }
}

function holdBytes(index: Index<Uint8Array>, s: Uint8Array): number {
  const n = s.length
  const { byFirst } = index
  for (let i = Math.max(0, n - index.maxLength + 1); i < n; i++) {
    const list = byFirst[s[i] as number]
    if (list === undefined) continue
    const rest = n - i
    next: for (const p of list) {
      if (p.length <= rest) break
      for (let j = 1; j < rest; j++) if (s[i + j] !== p[j]) continue next
      return i
    }
  }
  return n
}

/**
 * The secrets of every live provider in this process, for the logger: a log line may carry what no exit
 * redacted (an unexpected exception's message), and must not carry a key. Providers add their redactor when
 * created and release it when dropped; the union is rebuilt on the next line after a change, which is rare
 * (a Model or Secret changed), so a line costs one search.
 */
export class SecretSet {
  readonly #members = new Map<Redactor, number>()
  #union: Redactor | undefined = Redactor.none

  /** Adds a redactor's secrets; the returned function takes them out again (once). */
  add(redactor: Redactor): () => void {
    if (redactor.empty) return () => {}
    this.#members.set(redactor, (this.#members.get(redactor) ?? 0) + 1)
    this.#union = undefined
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#members.get(redactor) ?? 1) - 1
      if (n === 0) this.#members.delete(redactor)
      else this.#members.set(redactor, n)
      this.#union = undefined
    }
  }

  /** One redactor for all the secrets now known. */
  get redactor(): Redactor {
    return (this.#union ??= Redactor.union(this.#members.keys()))
  }
}

export const knownSecrets = new SecretSet()
