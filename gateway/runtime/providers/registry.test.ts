import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { Provider, ProviderConfig } from '../provider.ts'
import { ProviderError, redact, secretsOf } from '../provider.ts'
import { Redactor } from '../redactor.ts'
import { onFirstUse, providerFactory } from './registry.ts'

/** A factory that records the config it was given instead of building a client. */
function capturing(): { seen: ProviderConfig[]; make: (c: ProviderConfig) => Provider } {
  const seen: ProviderConfig[] = []
  return {
    seen,
    make: (c) => {
      seen.push(c)
      return {
        provider: c.provider,
        model: c.model,
        complete: () => Promise.reject(new Error('unused')),
        probe: () => Promise.resolve(),
      }
    },
  }
}

const base = { headers: {}, properties: {} }

describe('providerFactory', () => {
  const env = { OPENAI_API_KEY: 'sk-env-0123456789', OPENAI_BASE_URL: 'http://ollama.local/v1' }

  it('fills the key and base URL from the environment', () => {
    const c = capturing()
    providerFactory({ env }, { openai: c.make })({ ...base, provider: 'openai', model: 'gpt-4o' })
    expect(c.seen[0]).toMatchObject({ apiKey: env.OPENAI_API_KEY, baseUrl: env.OPENAI_BASE_URL })
  })

  it('never sends the environment key to a base URL a Model names itself', () => {
    const c = capturing()
    const make = providerFactory({ env }, { openai: c.make })
    make({ ...base, provider: 'openai', model: 'm', baseUrl: 'http://attacker.example/v1' })
    expect(c.seen[0]?.apiKey).toBeUndefined()
    make({ ...base, provider: 'openai', model: 'm', baseUrl: env.OPENAI_BASE_URL })
    expect(c.seen[1]?.apiKey).toBe(env.OPENAI_API_KEY)
  })

  it('a cloud model without any key is missing_api_key, or the mock stands in for it', () => {
    const c = capturing()
    let error: unknown
    try {
      providerFactory({}, { anthropic: c.make })({ ...base, provider: 'anthropic', model: 'claude-x' })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ProviderError)
    expect((error as ProviderError).code).toBe('missing_api_key')
    expect((error as ProviderError).message).toContain('ANTHROPIC_API_KEY')
    const stand = providerFactory(
      { withoutKey: 'mock' },
      { anthropic: c.make },
    )({
      ...base,
      provider: 'anthropic',
      model: 'claude-x',
    })
    expect(stand.provider).toBe('mock')
    expect(stand.standIn).toContain('the mock model answers instead')
    expect(c.seen).toHaveLength(0)
  })

  it('a baseUrl no client could call is refused when the Model is built, before its SDK loads, without quoting it', () => {
    const c = capturing()
    const make = providerFactory({}, { openai: c.make, anthropic: c.make })
    for (const baseUrl of ['not a url', 'ftp://user:pa55word@host/v1', 'file:///etc/passwd']) {
      let error: unknown
      try {
        make({ ...base, provider: 'openai', model: 'm', apiKey: 'k-1', baseUrl })
      } catch (err) {
        error = err
      }
      expect(error).toBeInstanceOf(ProviderError)
      expect((error as ProviderError).code).toBe('misconfigured')
      expect((error as ProviderError).message).toBe(
        'the baseUrl of openai model m is not an http(s) URL: set an address such as https://api.example.com/v1',
      )
    }
    expect(c.seen).toHaveLength(0)
    make({
      ...base,
      provider: 'anthropic',
      model: 'm',
      apiKey: 'k-1',
      baseUrl: 'https://proxy.internal/anthropic',
    })
    expect(c.seen).toHaveLength(1)
  })
})

describe('SDK providers load on first use', () => {
  it('a process imports an SDK only once a Model of its provider is built', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url))
    const probe = `
      import { registerHooks } from 'node:module'
      const seen = new Set()
      registerHooks({ resolve(specifier, context, next) {
        const r = next(specifier, context)
        for (const sdk of ['/node_modules/openai/', '/node_modules/@anthropic-ai/sdk/']) if (r.url.includes(sdk)) seen.add(sdk)
        return r
      } })
      const { providerFactory } = await import(${JSON.stringify(`${root}gateway/runtime/providers/registry.ts`)})
      await import(${JSON.stringify(`${root}gateway/index.ts`)})
      const before = [...seen]
      const make = providerFactory({})
      make({ provider: 'mock', model: 'mock', headers: {}, properties: {} })
      const afterMock = [...seen]
      const openai = make({ provider: 'openai', model: 'm', baseUrl: 'http://127.0.0.1:9/v1', headers: {}, properties: {} })
      await openai.probe(AbortSignal.timeout(2000)).catch(() => undefined)
      process.stdout.write(JSON.stringify({ before, afterMock, afterOpenai: [...seen], forwards: typeof openai.forward }))
    `
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '--disable-warning=ExperimentalWarning', '-e', probe],
      { timeout: 30_000 },
    )
    expect(JSON.parse(stdout)).toEqual({
      before: [],
      afterMock: [],
      afterOpenai: ['/node_modules/openai/'],
      forwards: 'function',
    })
  })

  it('calls made before the module lands wait for it; a provider that cannot be built fails its calls', async () => {
    let release: () => void = () => undefined
    const landed = new Promise<void>((resolve) => (release = resolve))
    const c = capturing()
    const lazy = onFirstUse(async () => {
      await landed
      return c.make
    }, false)
    const provider = lazy({ ...base, provider: 'openai', model: 'm' })
    expect('forward' in provider).toBe(false)
    const probed = provider.probe(AbortSignal.timeout(1000))
    expect(c.seen).toHaveLength(0)
    release()
    await probed
    expect(c.seen).toHaveLength(1)

    const broken = onFirstUse(
      () =>
        Promise.resolve(() => {
          throw new Error('baseUrl is not a URL')
        }),
      true,
    )({ ...base, provider: 'openai', model: 'm' })
    await expect(broken.probe(AbortSignal.timeout(1000))).rejects.toThrow('baseUrl is not a URL')
    await expect(broken.forward?.({}, AbortSignal.timeout(1000))).rejects.toThrow('baseUrl is not a URL')
  })
})

describe('redact', () => {
  it('hides the given secrets, masked OpenAI-style keys and passwords in URLs', () => {
    expect(redact('bad key abcdef123456 here', Redactor.of(['abcdef123456']))).toBe('bad key [REDACTED] here')
    expect(redact('Incorrect API key provided: sk-proj-****************abcd.', Redactor.none)).toBe(
      'Incorrect API key provided: [REDACTED].',
    )
    expect(redact('could not reach http://user:hunter2pass@host/v1', Redactor.none)).toBe(
      'could not reach http://[REDACTED]@host/v1',
    )
  })

  it('secretsOf names the key, values from Secrets, credential headers and what a base URL carries', () => {
    const s = secretsOf({
      ...base,
      provider: 'openai',
      model: 'm',
      apiKey: 'k-123456',
      headers: { 'x-token': 'tok-abcdef', 'X-Team': 'platform', 'X-Tenant': 'from-a-secret' },
      secrets: ['from-a-secret'],
      baseUrl: 'http://u:p%40ss-word@h/v1?key=query-secret&api-version=2024-10-21',
    })
    expect(s).toEqual(
      expect.arrayContaining(['k-123456', 'tok-abcdef', 'p@ss-word', 'query-secret', 'from-a-secret']),
    )
    // Written inline under a name that is no credential's: a word that answers may well contain.
    expect(s).not.toContain('platform')
    expect(s).not.toContain('2024-10-21')
  })
})
