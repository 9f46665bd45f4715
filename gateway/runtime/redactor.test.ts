import { describe, expect, it } from 'vitest'
import { MIN_SECRET_LENGTH, REDACTED, Redactor, secretForms } from './redactor.ts'

const KEY = 'sk-canary-Zx9/+q=Wv"\\8Kd3mP0'
const b64 = (s: string) => Buffer.from(s).toString('base64')
const b64url = (s: string) => Buffer.from(s).toString('base64url')
const enc = new TextEncoder()
const dec = new TextDecoder()

/** Every way the tests expect KEY to be spotted in, each inside some neighbouring text. */
const ECHOES: Record<string, string> = {
  raw: `Incorrect API key provided: ${KEY}.`,
  json: JSON.stringify({ error: { message: `key ${KEY} refused` } }),
  uri: `https://x.test/?k=${encodeURIComponent(KEY)}&z=1`,
  'uri lower-case hex': `k=${encodeURIComponent(KEY).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())}`,
  form: new URLSearchParams({ k: KEY }).toString(),
  'base64 of Bearer <key>': `echo ${b64(`Bearer ${KEY}`)} done`,
  'base64, aligned': b64(KEY),
  'base64, offset 1': b64(`x${KEY}y`),
  'base64, offset 2': b64(`xy${KEY}`),
  'base64url of Bearer <key>': b64url(`Bearer ${KEY}`),
  'base64url, offset 1': b64url(`!${KEY}`),
  'base64 inside JSON': JSON.stringify({ token: b64(`Basic user:${KEY}`) }),
}

/** The texts a leak is looked for in: the key and what a reader could decode back into it. */
function leaks(out: string): boolean {
  if (out.includes(KEY) || out.includes(JSON.stringify(KEY).slice(1, -1))) return true
  for (const decoded of [out, out.replaceAll('+', ' ')]) {
    try {
      if (decodeURIComponent(decoded).includes(KEY)) return true
    } catch {
      // Not URL-encoded text.
    }
  }
  // Decode every base64-looking run and look for most of the key in it.
  for (const run of out.match(/[A-Za-z0-9+/_-]{12,}={0,2}/g) ?? []) {
    for (let cut = 0; cut < 4; cut++) {
      const text = Buffer.from(
        run.slice(cut),
        run.includes('-') || run.includes('_') ? 'base64url' : 'base64',
      ).toString('latin1')
      if (text.includes(KEY.slice(2, -2))) return true
    }
  }
  return false
}

describe('Redactor', () => {
  const r = Redactor.of([KEY])

  it.each(Object.entries(ECHOES))('finds the key %s', (_, text) => {
    expect(leaks(text)).toBe(true)
    const out = r.text(text)
    expect(out).toContain(REDACTED)
    expect(leaks(out)).toBe(false)
    const bytes = dec.decode(r.bytes(enc.encode(text)))
    expect(bytes).toBe(out)
  })

  it('keeps the neighbours of a raw key and JSON valid', () => {
    expect(r.text(`a ${KEY} b`)).toBe(`a ${REDACTED} b`)
    const json = JSON.stringify({ message: KEY, other: 'x' })
    expect(JSON.parse(r.text(json))).toEqual({ message: REDACTED, other: 'x' })
  })

  it('returns its input itself when there is nothing to hide', () => {
    const text = 'nothing secret here, only sk- and Bearer and base64 like c2stY2Fu'
    expect(r.text(text)).toBe(text)
    const bytes = enc.encode(text)
    expect(r.bytes(bytes)).toBe(bytes)
    expect(Redactor.none.text(text)).toBe(text)
  })

  it(`ignores values shorter than ${String(MIN_SECRET_LENGTH)} characters, and trims`, () => {
    expect(secretForms('prod')).toEqual([])
    const short = Redactor.of(['prod', undefined, '  '])
    expect(short.empty).toBe(true)
    expect(short.text('prod')).toBe('prod')
    // A Secret written with `echo key | base64` ends in a newline the header never carries.
    expect(Redactor.of([`${KEY}\n`]).text(`got ${KEY}.`)).toBe(`got ${REDACTED}.`)
  })

  it('redacts several secrets, the longer one first where one contains another', () => {
    const both = Redactor.of([KEY, `Bearer ${KEY}`, 'tok-0123456789'])
    expect(both.text(`a Bearer ${KEY} b tok-0123456789 c ${KEY}`)).toBe(
      `a ${REDACTED} b ${REDACTED} c ${REDACTED}`,
    )
  })
})

/** The same replacement, the slow obvious way: at each position, the longest form that starts there. */
function naive(text: string, secrets: string[]): string {
  const forms = secrets.flatMap(secretForms).sort((a, b) => b.length - a.length)
  let out = ''
  for (let i = 0; i < text.length;) {
    const f = forms.find((x) => text.startsWith(x, i))
    if (f === undefined) out += text.charAt(i++)
    else {
      out += REDACTED
      i += f.length
    }
  }
  return out
}

describe('Redactor against a naive search', () => {
  it('agrees on random texts made of secret forms, their pieces and noise', () => {
    const secrets = [KEY, 'tok-0123456789abcdef', 'a1b2c3d4']
    const r = Redactor.of(secrets)
    const forms = secrets.flatMap(secretForms)
    let seed = 11
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff
      return seed % n
    }
    for (let round = 0; round < 500; round++) {
      let t = ''
      for (let i = 0; i < 10; i++) {
        const f = forms[rand(forms.length)]!
        const pick = rand(4)
        const noise = () => ' .,:%xyzQW"'.slice(rand(6), 6 + rand(6))
        t +=
          pick === 0
            ? f
            : pick === 1
              ? f.slice(rand(f.length))
              : pick === 2
                ? f.slice(0, rand(f.length))
                : noise()
      }
      expect(r.text(t)).toBe(naive(t, secrets))
      expect(dec.decode(r.bytes(enc.encode(t)))).toBe(naive(t, secrets))
    }
  })
})

describe('Redactor streams', () => {
  const r = Redactor.of([KEY, `${KEY}-longer-suffix`])
  const text = `data: {"a":"${KEY}"}\n\ndata: ${b64(`Bearer ${KEY}`)}\n\nthen ${KEY}-longer-suffix end`
  const whole = r.text(text)

  it('finds a secret split at any point between two chunks, text and bytes', () => {
    for (let cut = 0; cut <= text.length; cut++) {
      const ts = r.textStream()
      expect(ts.push(text.slice(0, cut)) + ts.push(text.slice(cut)) + ts.end()).toBe(whole)
      const bs = r.byteStream()
      const bytes = enc.encode(text)
      const parts = [bs.push(bytes.slice(0, cut)), bs.push(bytes.slice(cut)), bs.end()]
      expect(dec.decode(Buffer.concat(parts))).toBe(whole)
    }
    expect(leaks(whole)).toBe(false)
  })

  it('finds secrets in text streamed one character at a time', () => {
    const ts = r.textStream()
    let out = ''
    for (const ch of text) out += ts.push(ch)
    expect(out + ts.end()).toBe(whole)
  })

  it('holds back only what could start a secret: whole SSE events flow at once', () => {
    const bs = r.byteStream()
    const event = enc.encode('data: {"choices":[{"delta":{"content":"hello"}}]}\n\n')
    // Nothing in it can begin a pattern, so it goes out whole and uncopied.
    expect(bs.push(event)).toBe(event)
    const ts = r.textStream()
    expect(ts.push('the key is s')).toBe('the key is ')
    expect(ts.push('k-')).toBe('')
    expect(ts.push('nothing')).toBe('sk-nothing')
    expect(ts.end()).toBe('')
  })

  it('keeps a match back while a longer secret may still extend it', () => {
    const ts = r.textStream()
    expect(ts.push(`x ${KEY}`)).toBe('x ')
    expect(ts.push('-longer-suffix!')).toBe(`${REDACTED}!`)
    const again = r.textStream()
    expect(again.push(`x ${KEY}`) + again.push(' and more') + again.end()).toBe(`x ${REDACTED} and more`)
  })

  it('random chunkings of random text give what redacting it whole gives', () => {
    let seed = 7
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff
      return seed % n
    }
    const pieces = [KEY, 'sk-', 'c2st', ' ', 'abc', b64(`Bearer ${KEY}`), encodeURIComponent(KEY), '\n\n']
    for (let round = 0; round < 200; round++) {
      let t = ''
      for (let i = 0; i < 12; i++) t += pieces[rand(pieces.length)] ?? ''
      const ts = r.textStream()
      let out = ''
      for (let at = 0; at < t.length;) {
        const n = 1 + rand(9)
        out += ts.push(t.slice(at, at + n))
        at += n
      }
      expect(out + ts.end()).toBe(r.text(t))
    }
  })
})
