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
      [`keys:\n  - { id: Bad_Id, sha256: ${digest} }`, 'keys[0].id: must be a name'],
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
    const secret = 'ark_hunter2hunter2hunter2'
    let error = ''
    try {
      parseKeysFile(`keys:\n  - { id: ci, key: ${secret} }`)
    } catch (err) {
      error = (err as Error).message
    }
    expect(error).toContain('keys[0]: unknown field "key" (the file holds digests, never keys')
    expect(error).not.toContain(secret)
    try {
      parseKeysFile(`keys:\n  - { id: ci, sha256: ${secret} }`)
    } catch (err) {
      error = (err as Error).message
    }
    expect(error).not.toContain(secret)
  })
})

describe('keysFromSecret', () => {
  it('reads each data key as an id and its value as the digest; a bad value is refused by its id', () => {
    expect(keysFromSecret({ ci: `${'c'.repeat(64)}\n` })).toEqual([{ id: 'ci', sha256: 'c'.repeat(64) }])
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).toThrow('data.ci.sha256: must be')
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).not.toThrow('ark_plaintext')
  })
})
