import { describe, expect, it } from 'vitest'
import { KeyRing, digestOf, keysFromSecret, newKey, parseKeysFile } from './keys.ts'

describe('KeyRing', () => {
  it('knows a key by its digest, says its id, and forgets it when replaced', () => {
    const a = newKey()
    const b = newKey()
    expect(a.key).toMatch(/^ark_[A-Za-z0-9_-]{43}$/)
    expect(a.sha256).toBe(digestOf(a.key))
    const ring = new KeyRing()
    expect(ring.verify(a.key)).toBeUndefined()
    ring.replace([{ id: 'ci', sha256: a.sha256 }])
    expect(ring.verify(a.key)).toBe('ci')
    expect(ring.verify(b.key)).toBeUndefined()
    // The digest is not a key: presenting it gets nowhere.
    expect(ring.verify(a.sha256)).toBeUndefined()
    ring.replace([{ id: 'next', sha256: b.sha256 }])
    expect(ring.verify(a.key)).toBeUndefined()
    expect(ring.verify(b.key)).toBe('next')
    expect(ring.verify('')).toBeUndefined()
    expect(ring.verify('x'.repeat(10_000))).toBeUndefined()
  })
})

describe('parseKeysFile', () => {
  const digest = 'a'.repeat(64)

  it('reads ids and digests', () => {
    expect(parseKeysFile(`keys:\n  - id: ci\n    sha256: ${digest}\n`)).toEqual([
      { id: 'ci', sha256: digest },
    ])
    expect(parseKeysFile('keys: []\n')).toEqual([])
  })

  it('refuses what is wrong, saying where, and never repeats a key written in the open', () => {
    const cases: [string, string][] = [
      ['', 'keys: must be a list'],
      ['keys: {}', 'keys: must be a list'],
      ['keys: [1]', 'keys[0]: must be {id, sha256}'],
      [`keys:\n  - { id: Bad_Id, sha256: ${digest} }`, 'keys[0]: the id must be a name'],
      ['keys:\n  - { id: ci, sha256: ABC }', 'keys[0].sha256: must be'],
      [
        `keys:\n  - { id: ci, sha256: ${digest} }\n  - { id: ci, sha256: ${'b'.repeat(64)} }`,
        'keys[1].id: "ci" is used twice',
      ],
      [
        `keys:\n  - { id: a, sha256: ${digest} }\n  - { id: b, sha256: ${digest} }`,
        'keys[1].sha256: the same key is listed twice',
      ],
      ['keys: [', 'not YAML'],
    ]
    for (const [text, message] of cases) expect(() => parseKeysFile(text), text).toThrow(message)
  })

  it('never repeats a key pasted into the file, wherever it is, nor lets YAML print it', () => {
    const secret = 'ark_hunter2Hunter2hunter2'
    const refusal = (text: string): string => {
      try {
        parseKeysFile(text)
      } catch (err) {
        expect((err as Error).cause, text).toBeUndefined()
        return (err as Error).message
      }
      throw new Error(`accepted: ${text}`)
    }
    const cases: [string, string][] = [
      [`keys:\n  - { id: ci, key: ${secret} }`, 'keys[0]: a `key` field: the file holds digests, never keys'],
      [`keys:\n  - { id: ci, sha256: ${secret} }`, 'keys[0].sha256: must be'],
      [`keys:\n  - { id: ci, ${secret} }`, 'keys[0]: a field other than id and sha256'],
      [`keys:\n  - id: ${secret}\n    sha256: ${digest}`, 'keys[0]: the id must be'],
      [`keys:\n  - id: ci\n    sha256: >${secret} x\n`, 'not YAML ('],
      [`keys:\n  - id: ci\n    sha256: !${secret} x\n`, 'keys[0].sha256: must be'],
    ]
    const warnings: unknown[] = []
    const warn = process.emitWarning.bind(process)
    process.emitWarning = (w: unknown) => void warnings.push(w)
    try {
      for (const [text, message] of cases) {
        const got = refusal(text)
        expect(got, text).toContain(message)
        expect(got, text).not.toContain(secret)
      }
    } finally {
      process.emitWarning = warn
    }
    expect(JSON.stringify(warnings.map(String))).not.toContain(secret)
  })
})

describe('keysFromSecret', () => {
  it('reads each data key as an id and its value as the digest; a bad value is refused by its id', () => {
    expect(keysFromSecret({ ci: `${'c'.repeat(64)}\n` })).toEqual([{ id: 'ci', sha256: 'c'.repeat(64) }])
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).toThrow('data.ci.sha256: must be')
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).not.toThrow('ark_plaintext')
    // A key where its id belongs is named by position only.
    expect(() => keysFromSecret({ ark_Plain_Key: 'c'.repeat(64) })).toThrow(
      'data entry 1 (its name is not a valid key id)',
    )
    expect(() => keysFromSecret({ ark_Plain_Key: 'c'.repeat(64) })).not.toThrow('ark_Plain_Key')
  })
})
