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
    expect(ring.verify(a.key)?.id).toBe('ci')
    expect(ring.verify(b.key)).toBeUndefined()
    // The digest is not a key: presenting it gets nowhere.
    expect(ring.verify(a.sha256)).toBeUndefined()
    ring.replace([{ id: 'next', sha256: b.sha256 }])
    expect(ring.verify(a.key)).toBeUndefined()
    expect(ring.verify(b.key)?.id).toBe('next')
    expect(ring.verify('')).toBeUndefined()
    expect(ring.verify('x'.repeat(10_000))).toBeUndefined()
  })

  it('tells who listens when a key is removed or rescoped, and no one else', () => {
    const a = newKey()
    const b = newKey()
    const ring = new KeyRing()
    ring.replace([
      { id: 'a', sha256: a.sha256 },
      { id: 'b', sha256: b.sha256 },
    ])
    const told: string[] = []
    const stopA = ring.verify(a.key)?.onRevoked?.(() => told.push('a'))
    ring.verify(b.key)?.onRevoked?.(() => told.push('b'))
    // The same keys again: nothing changed for anyone.
    ring.replace([
      { id: 'a', sha256: a.sha256 },
      { id: 'b', sha256: b.sha256 },
    ])
    expect(told).toEqual([])
    // b rescoped: told once; a listener that stopped hears nothing.
    stopA?.()
    ring.replace([
      { id: 'a', sha256: a.sha256, scope: { routes: ['openai'] } },
      { id: 'b', sha256: b.sha256, scope: { namespaces: ['x'] } },
    ])
    expect(told).toEqual(['b'])
    ring.replace([])
    expect(told).toEqual(['b'])
    expect(ring.verify(b.key)).toBeUndefined()
  })

  it("tells a listener at once when its request's key was revoked before it listened", async () => {
    const a = newKey()
    const b = newKey()
    const ring = new KeyRing()
    ring.replace([
      { id: 'a', sha256: a.sha256 },
      { id: 'b', sha256: b.sha256 },
    ])
    // Both requests were let in; then, while they were on their way, a was removed and b left as it was.
    const first = ring.verify(a.key)
    const second = ring.verify(b.key)
    // A reload that changes nothing, then one that removes a: a was still let in on terms now gone.
    ring.replace([
      { id: 'a', sha256: a.sha256 },
      { id: 'b', sha256: b.sha256 },
    ])
    ring.replace([{ id: 'b', sha256: b.sha256 }])
    const told: string[] = []
    first?.onRevoked?.(() => told.push('a'))
    second?.onRevoked?.(() => told.push('b'))
    await Promise.resolve()
    expect(told).toEqual(['a'])
  })

  it('gives each key its scope', () => {
    const a = newKey()
    const ring = new KeyRing()
    ring.replace([{ id: 'a', sha256: a.sha256, scope: { namespaces: ['team-a'] } }])
    const who = ring.verify(a.key)
    expect(who?.unrestricted).toBe(false)
    expect(who?.allowsTarget('Agent', { namespace: 'team-a', name: 'x' })).toBe(true)
    expect(who?.allowsTarget('Agent', { namespace: 'default', name: 'x' })).toBe(false)
  })
})

describe('parseKeysFile', () => {
  const digest = 'a'.repeat(64)

  it('reads ids and digests', () => {
    expect(parseKeysFile(`keys:\n  - id: ci\n    sha256: ${digest}\n`).keys).toEqual([
      { id: 'ci', sha256: digest },
    ])
    expect(parseKeysFile('keys: []\n')).toEqual({ keys: [], namespaces: new Map() })
  })

  it('reads a scope beside a digest, and refuses one that is wrong, saying where', () => {
    expect(
      parseKeysFile(
        `keys:\n  - id: a\n    sha256: ${digest}\n    namespaces: [team-*]\n    targets: [agent/*, team/prod/x]\n    routes: [openai, mcp]\n`,
      ).keys,
    ).toEqual([
      {
        id: 'a',
        sha256: digest,
        scope: { namespaces: ['team-*'], targets: ['agent/*', 'team/prod/x'], routes: ['openai', 'mcp'] },
      },
    ])
    expect(parseKeysFile(`keys:\n  - { id: a, sha256: ${digest}, targets: [] }`).keys).toEqual([
      { id: 'a', sha256: digest, scope: { targets: [] } },
    ])
    expect(() => parseKeysFile(`keys:\n  - { id: a, sha256: ${digest}, routes: [web] }`)).toThrow(
      'keys[0].routes[0]: "web" is not one of openai, a2a, mcp, metrics, ui',
    )
    expect(() => parseKeysFile(`keys:\n  - { id: a, sha256: ${digest}, targets: agent/x }`)).toThrow(
      'keys[0].targets: must be a list of strings',
    )
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
      [`keys:\n  - { id: ci, ${secret} }`, 'keys[0]: a field other than id, sha256'],
      [
        `keys:\n  - { id: ci, sha256: ${digest}, targets: [${secret}] }`,
        'keys[0].targets[0]: is not a target',
      ],
      [`keys:\n  - { id: ci, sha256: ${digest}, routes: [${secret}] }`, 'keys[0].routes[0]: is not one of'],
      [
        `keys:\n  - { id: ci, sha256: ${digest}, namespaces: [${secret}] }`,
        'keys[0].namespaces[0]: is not a namespace',
      ],
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

describe('limits', () => {
  const digest = 'e'.repeat(64)
  it("reads a key's limits and namespaces' limits, from a file and from a Secret", () => {
    const file = parseKeysFile(
      `keys:\n  - id: a\n    sha256: ${digest}\n    limits: { requestsPerSecond: 2, tokensPerDay: 500 }\nnamespaces:\n  team-a: { tokensPerDay: 9000 }\n`,
    )
    expect(file.keys).toEqual([
      { id: 'a', sha256: digest, limits: { requestsPerSecond: 2, tokensPerDay: 500 } },
    ])
    expect([...file.namespaces]).toEqual([['team-a', { tokensPerDay: 9000 }]])
    const secret = keysFromSecret({
      a: `sha256: ${digest}\nlimits: { burst: 3, requestsPerSecond: 1 }`,
      _namespaces: 'team-b: { requestsPerSecond: 10 }',
    })
    expect(secret.keys).toEqual([{ id: 'a', sha256: digest, limits: { requestsPerSecond: 1, burst: 3 } }])
    expect(secret.namespaces.get('team-b')).toEqual({ requestsPerSecond: 10 })
    expect(() => parseKeysFile(`keys: []\nnamespaces:\n  Team_A: { tokensPerDay: 1 }\n`)).toThrow(
      "namespaces: a name that is not a namespace's",
    )
    expect(() => parseKeysFile(`keys: []\nnamespaces:\n  a: { tokensPerDay: 0 }\n`)).toThrow(
      'namespaces.a.tokensPerDay: must be a whole number',
    )
    expect(() => parseKeysFile(`keys: []\nquotas: {}\n`)).toThrow(
      'quotas: a top-level field other than keys and namespaces',
    )
    expect(() => keysFromSecret({ _namespaces: '[' })).toThrow('data._namespaces: not YAML')
  })

  it('keeps the streams of a key whose limits alone change', async () => {
    const { key, sha256 } = newKey()
    const ring = new KeyRing()
    ring.replace([{ id: 'a', sha256 }])
    let told = 0
    ring.verify(key)?.onRevoked?.(() => told++)
    ring.replace([{ id: 'a', sha256, limits: { tokensPerDay: 5 } }])
    expect(told).toBe(0)
    // It was listening all along: removing the key tells it.
    ring.replace([])
    await Promise.resolve()
    expect(told).toBe(1)
    expect(ring.verify('x')).toBeUndefined()
  })
})

describe('keysFromSecret', () => {
  it('reads each data key as an id and its value as the digest; a bad value is refused by its id', () => {
    expect(keysFromSecret({ ci: `${'c'.repeat(64)}\n` }).keys).toEqual([{ id: 'ci', sha256: 'c'.repeat(64) }])
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).toThrow("data.ci: must be the key's SHA-256 digest")
    expect(() => keysFromSecret({ ci: 'ark_plaintext' })).not.toThrow('ark_plaintext')
    // A key where its id belongs is named by position only.
    expect(() => keysFromSecret({ ark_Plain_Key: 'c'.repeat(64) })).toThrow(
      'data entry 1 (its name is not a valid key id)',
    )
    expect(() => keysFromSecret({ ark_Plain_Key: 'c'.repeat(64) })).not.toThrow('ark_Plain_Key')
  })

  it('reads a value that is a mapping of the digest and a scope (YAML or JSON)', () => {
    const digest = 'd'.repeat(64)
    expect(keysFromSecret({ a: `sha256: ${digest}\nnamespaces: [team-a]\n` }).keys).toEqual([
      { id: 'a', sha256: digest, scope: { namespaces: ['team-a'] } },
    ])
    expect(keysFromSecret({ a: JSON.stringify({ sha256: digest, routes: ['metrics'] }) }).keys).toEqual([
      { id: 'a', sha256: digest, scope: { routes: ['metrics'] } },
    ])
    expect(() => keysFromSecret({ a: `sha256: ${digest}\nrole: admin\n` })).toThrow(
      'data.a: a field other than sha256, routes, namespaces, targets and limits',
    )
    expect(() => keysFromSecret({ a: `{sha256: ${digest}, targets: [agent/a/b/c]}` })).toThrow(
      'data.a.targets[0]: "agent/a/b/c" is not a target pattern',
    )
    // Text YAML cannot read is refused without YAML's excerpt of it.
    expect(() => keysFromSecret({ a: '{ark_secret: [' })).toThrow("data.a: must be the key's SHA-256 digest")
    expect(() => keysFromSecret({ a: '{ark_secret: [' })).not.toThrow('ark_secret')
  })
})
