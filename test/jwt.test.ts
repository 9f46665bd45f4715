/**
 * JWTs as bearer tokens on the real `ark dev`, beside an API key: tokens signed with keys from a JWKS that a
 * local HTTP server serves (as an identity provider does), through the OpenAI SDK and raw HTTP. A valid token
 * gets in as its subject, its scope claim's `ark:` entries narrow it, and a token that is expired, for another
 * audience or issuer, badly signed or malformed is refused with 401 saying why, never quoting it. A key the
 * provider rotates in is fetched when a token names it. A JWKS file works the same (unit: JwtVerifier).
 */
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CryptoKey, JWK } from 'jose'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { JwtVerifier, newKey, silentLogger } from '../gateway/index.ts'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'

const MANIFESTS = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec: { prompt: I help. }
---
apiVersion: v1
kind: Namespace
metadata: { name: team-a }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: team-a }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: research, namespace: team-a }
spec: { prompt: I research. }
`

const ISSUER = 'https://idp.example.test'
const AUDIENCE = 'ark-gateway'

interface SigningKey {
  readonly kid: string
  readonly privateKey: CryptoKey
  readonly jwk: JWK
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } }
}

function token(
  key: SigningKey,
  claims: Record<string, unknown> = {},
  options: { sub?: string; aud?: string; iss?: string; exp?: number | string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setSubject(options.sub ?? 'alice')
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '10m')
    .sign(key.privateKey)
}

let dir: string
let ark: ArkProcess
let jwks: Server
let published: JWK[] = []
let first: SigningKey
const apiKey = newKey()

beforeAll(async () => {
  first = await signingKey('k1')
  published = [first.jwk]
  jwks = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ keys: published }))
  })
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve))
  const port = (jwks.address() as { port: number }).port
  dir = await mkdtemp(join(tmpdir(), 'ark-jwt-'))
  await writeFile(join(dir, 'agents.yaml'), MANIFESTS)
  await writeFile(join(dir, 'keys.yaml'), `keys:\n  - id: ci\n    sha256: ${apiKey.sha256}\n`)
  ark = await startArk(
    [
      'dev',
      '-f',
      dir,
      '--port',
      '0',
      '--api-keys',
      join(dir, 'keys.yaml'),
      '--jwt-issuer',
      ISSUER,
      '--jwt-audience',
      AUDIENCE,
      '--jwks-url',
      `http://127.0.0.1:${String(port)}/.well-known/jwks.json`,
    ],
    { ready: 'API keys required' },
  )
}, 30_000)

afterAll(async () => {
  await ark.stop()
  await new Promise((r) => jwks.close(r))
  await rm(dir, { recursive: true, force: true })
})

const openai = (bearer: string) => new OpenAI({ baseURL: `${ark.url}/v1`, apiKey: bearer, maxRetries: 0 })
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
  )

describe('JWT bearer tokens', () => {
  it('lets a valid token in as its subject, beside API keys', async () => {
    const t = await token(first)
    const r = await openai(t).chat.completions.create({
      model: 'agent/helper',
      messages: [{ role: 'user', content: 'hello' }],
    })
    expect(r.choices[0]?.message.content).toBe('You said: hello')
    // The API key still works.
    expect((await openai(apiKey.key).models.list()).data.length).toBeGreaterThan(0)
    // Metrics count JWT callers under one label: subjects are unbounded.
    const metrics = await (await fetch(`${ark.url}/metrics`)).text()
    expect(metrics).toMatch(/ark_auth_requests_total\{key="jwt",result="ok"\} [1-9]/)
    expect(metrics).not.toContain('alice')
  })

  it("narrows a token by its scope claim's ark: entries, and says whose token it was", async () => {
    const t = await token(first, { scope: 'openid profile ark:namespaces:team-a ark:routes:openai' })
    const ids = (await openai(t).models.list()).data.map((m) => m.id).sort()
    expect(ids).toEqual(['agent/team-a/research', 'model/team-a/default'])
    const refused = await refusal(
      openai(t).chat.completions.create({
        model: 'agent/helper',
        messages: [{ role: 'user', content: 'x' }],
      }),
    )
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(refused?.message).toContain('the token of jwt:alice may not call agent/helper')
    const a2a = await fetch(`${ark.url}/a2a`, { headers: { authorization: `Bearer ${t}` } })
    expect(a2a.status).toBe(403)
    // scp as an array works too.
    const scp = await token(first, { scp: ['ark:targets:agent/helper'] }, { sub: 'bob' })
    expect((await openai(scp).models.list()).data.map((m) => m.id)).toEqual(['agent/helper'])
    // A scope entry that is not a pattern refuses the token, saying which.
    const bad = await token(first, { scope: 'ark:routes:admin' })
    const r = await fetch(`${ark.url}/v1/models`, { headers: { authorization: `Bearer ${bad}` } })
    expect(r.status).toBe(401)
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain(
      "the token's scope claim.routes[0]",
    )
  })

  it('refuses a token that is expired, for another audience or issuer, badly signed or malformed, saying why', async () => {
    const stranger = await signingKey('k1')
    const cases: [Promise<string> | string, string][] = [
      [token(first, {}, { exp: Math.floor(Date.now() / 1000) - 120 }), 'the token has expired'],
      [token(first, {}, { aud: 'another-service' }), "the token's aud claim"],
      [token(first, {}, { iss: 'https://evil.example' }), "the token's iss claim"],
      [token(stranger), "the token's signature does not verify"],
      ['a.b.c', 'the token is not a well-formed JWT'],
      [
        new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: first.kid })
          .setSubject('eve')
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .sign(first.privateKey),
        "the token's exp claim",
      ],
    ]
    for (const [pending, why] of cases) {
      const t = await pending
      const r = await fetch(`${ark.url}/v1/models`, { headers: { authorization: `Bearer ${t}` } })
      expect(r.status, why).toBe(401)
      expect(r.headers.get('www-authenticate'), why).toContain('error="invalid_token"')
      const message = ((await r.json()) as { error: { message: string } }).error.message
      expect(message, why).toContain(why)
      expect(message, why).not.toContain(t)
    }
    const logs = ark.lines.map((l) => JSON.stringify(l)).join('\n')
    expect(logs).not.toContain((await token(first)).split('.')[2])
  })

  it('fetches a key the provider rotated in when a token names it', async () => {
    const next = await signingKey('k2')
    published = [first.jwk, next.jwk]
    const t = await token(next, {}, { sub: 'carol' })
    // The JWKS is fetched again for a key id it has not seen (at most every 5 s).
    await vi.waitFor(
      async () =>
        expect(
          (await fetch(`${ark.url}/v1/models`, { headers: { authorization: `Bearer ${t}` } })).status,
        ).toBe(200),
      { timeout: 15_000, interval: 500 },
    )
  }, 30_000)
})

describe('a JWKS URL that cannot be reached', () => {
  it('answers 503 auth_unavailable, not 401, while no keys were ever fetched', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as { port: number }).port
    await new Promise((r) => closed.close(r))
    const d = await mkdtemp(join(tmpdir(), 'ark-jwt-down-'))
    await writeFile(join(d, 'agents.yaml'), MANIFESTS)
    const down = await startArk(
      [
        'dev',
        '-f',
        d,
        '--port',
        '0',
        '--jwt-issuer',
        ISSUER,
        '--jwt-audience',
        AUDIENCE,
        '--jwks-url',
        `http://127.0.0.1:${String(port)}/jwks.json`,
      ],
      { ready: 'serving' },
    )
    try {
      const t = await token(first)
      const err = await refusal(
        new OpenAI({ baseURL: `${down.url}/v1`, apiKey: t, maxRetries: 0 }).chat.completions.create({
          model: 'agent/helper',
          messages: [{ role: 'user', content: 'hi' }],
        }),
      )
      expect(err).toMatchObject({ status: 503, code: 'auth_unavailable' })
      expect(err?.headers?.get('retry-after')).toBe('5')
      expect(err?.message).toContain('the bearer token cannot be checked now: the JWKS could not be fetched')
      expect(err?.message).not.toContain(t)
      const a2a = await fetch(`${down.url}/a2a`, { headers: { authorization: `Bearer ${t}` } })
      expect(a2a.status).toBe(503)
      expect(await a2a.json()).toMatchObject({ error: { code: -32042 } })
    } finally {
      await down.stop()
      await rm(d, { recursive: true, force: true })
    }
  })

  it(
    'verifies with the keys fetched before while the provider is down, and tells an unknown key apart',
    { timeout: 30_000 },
    async () => {
      let up = true
      let fetches = 0
      const key = await signingKey('u1')
      const stranger = await signingKey('u2')
      let published = [key.jwk]
      const idp = createServer((_req, res) => {
        fetches++
        if (!up) {
          res.writeHead(502).end('bad gateway')
          return
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ keys: published }))
      })
      await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${String((idp.address() as { port: number }).port)}/jwks.json`
      const v = await JwtVerifier.start(
        { issuer: ISSUER, audience: AUDIENCE, jwks: { url }, urlMaxAgeMs: 50 },
        silentLogger,
      )
      try {
        expect(await v.verify(await token(key))).toMatchObject({ id: 'jwt:alice' })
        up = false
        // Past the keys' age they are fetched again, the fetch fails, and the keys before still verify.
        await new Promise((r) => setTimeout(r, 100))
        expect(await v.verify(await token(key, {}, { sub: 'bob' }))).toMatchObject({ id: 'jwt:bob' })
        // A key the provider never published is the token's fault, not the outage's.
        const refused = await v.verify(await token(stranger, {}, { sub: 'eve' }))
        expect(refused).toEqual({ error: 'no signing key of the JWKS matches the token' })
        // Meanwhile the provider is not asked on every token, only every 5 s.
        const asked = fetches
        for (let i = 0; i < 5; i++) await v.verify(await token(key, {}, { sub: `user-${String(i)}` }))
        expect(fetches).toBe(asked)
        // Back, with a key rotated in: fetched again, and tokens of the new key verify.
        published = [key.jwk, stranger.jwk]
        up = true
        await vi.waitFor(
          async () =>
            expect(await v.verify(await token(stranger, {}, { sub: 'frank' }))).toMatchObject({
              id: 'jwt:frank',
            }),
          { timeout: 15_000, interval: 250 },
        )
      } finally {
        v.close()
        await new Promise((r) => idp.close(r))
      }
    },
  )
})

describe('a token that expires', () => {
  it('ends the streams it holds open when it expires (past the 30 s leeway), as a revoked key does', async () => {
    const key = await signingKey('e1')
    const d = await mkdtemp(join(tmpdir(), 'ark-jwt-exp-'))
    const file = join(d, 'jwks.json')
    await writeFile(file, JSON.stringify({ keys: [key.jwk] }))
    const v = await JwtVerifier.start({ issuer: ISSUER, audience: AUDIENCE, jwks: { file } }, silentLogger)
    try {
      const who = await v.verify(await token(key, {}, { exp: '10s' }))
      if ('error' in who) throw new Error(who.error)
      vi.useFakeTimers({ now: Date.now(), toFake: ['setTimeout', 'clearTimeout', 'Date'] })
      const told: string[] = []
      // A token's runs are not cancelled at its expiry (nothing revokes it); its streams end.
      expect(who.onRevoked).toBeUndefined()
      who.onExpired?.(() => told.push('stream'))
      const stop = who.onExpired?.(() => told.push('ended before'))
      stop?.()
      vi.advanceTimersByTime(35_000)
      expect(told).toEqual([])
      vi.advanceTimersByTime(6_000)
      expect(told).toEqual(['stream'])
    } finally {
      vi.useRealTimers()
      v.close()
      await rm(d, { recursive: true, force: true })
    }
  })
})

describe('JwtVerifier with a JWKS file', () => {
  it('verifies against the file, follows it, and refuses a file with a private key', async () => {
    const key = await signingKey('f1')
    const d = await mkdtemp(join(tmpdir(), 'ark-jwks-'))
    const file = join(d, 'jwks.json')
    try {
      await writeFile(file, JSON.stringify({ keys: [key.jwk] }))
      const v = await JwtVerifier.start(
        { issuer: ISSUER, audience: AUDIENCE, jwks: { file }, fileIntervalMs: 50 },
        silentLogger,
      )
      try {
        const who = await v.verify(await token(key, { scope: 'ark:namespaces:x' }))
        expect(who).toMatchObject({ id: 'jwt:alice', label: 'jwt', unrestricted: false })
        // Rotated out of the file: refused once it is read again.
        const other = await signingKey('f2')
        await writeFile(file, JSON.stringify({ keys: [other.jwk] }))
        await vi.waitFor(
          async () => expect(await v.verify(await token(key, {}, { sub: 'dan' }))).toHaveProperty('error'),
          {
            timeout: 5000,
            interval: 100,
          },
        )
        expect(await v.verify(await token(other))).toMatchObject({ id: 'jwt:alice' })
      } finally {
        v.close()
      }
      const { privateKey } = await generateKeyPair('ES256', { extractable: true })
      await writeFile(file, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'p' }] }))
      await expect(
        JwtVerifier.start({ issuer: ISSUER, audience: AUDIENCE, jwks: { file } }, silentLogger),
      ).rejects.toThrow('holds a private key')
    } finally {
      await rm(d, { recursive: true, force: true })
    }
  })
})
