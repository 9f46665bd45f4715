/**
 * Which client serves which provider, and what a Model leaves unsaid: the API key and base URL from the
 * environment (OPENAI_API_KEY, OPENAI_BASE_URL for Ollama, ANTHROPIC_API_KEY, ...), and, on a laptop, the
 * mock model standing in for a model that has no key at all, so the same manifests run offline.
 */
import type { ProviderType } from '../../../controller/api/index.ts'
import type { Fetch, Provider, ProviderConfig, ProviderFactory } from '../provider.ts'
import { PROVIDER_DEFAULTS, ProviderError, redactorOf } from '../provider.ts'
import type { A2AProviderConfig } from './a2a.ts'
import { createMockProvider } from './mock.ts'
import { redactedError, withRedaction } from './redacting.ts'

/**
 * A provider whose module (and SDK) is imported when the first Model of its kind is, not when the process
 * starts: the openai and anthropic SDKs cost a process about 24 MiB together, which a controller or worker
 * whose Models are all mock, or all of one provider, never needs. The import starts as the provider is
 * built (when its Model is resolved, before any request); calls made before it lands wait for it, and a
 * failure to build surfaces from the first call (through withRedaction, like any call's error).
 */
export function onFirstUse(load: () => Promise<ProviderFactory>, forwards: boolean): ProviderFactory {
  let module: Promise<ProviderFactory> | undefined
  return (config) => {
    module ??= load()
    let ready: Provider | undefined
    const real = module.then((factory) => (ready = factory(config)))
    real.catch(() => undefined) // reported by the call that needs it
    const provider: Provider = {
      provider: config.provider,
      model: config.model,
      complete: (request) => ready?.complete(request) ?? real.then((p) => p.complete(request)),
      probe: (signal) => ready?.probe(signal) ?? real.then((p) => p.probe(signal)),
      dispose: () => {
        void real.then(
          (p) => p.dispose?.(),
          () => undefined,
        )
      },
    }
    if (!forwards) return provider
    return {
      ...provider,
      forward: (body, signal) => {
        if (ready?.forward !== undefined) return ready.forward(body, signal)
        return real.then((q) => {
          if (q.forward === undefined) throw new Error(`provider ${config.provider} does not forward`)
          return q.forward(body, signal)
        })
      },
    }
  }
}

/** OpenAI itself and Azure OpenAI: one client module, one SDK. */
const openai = onFirstUse(async () => (await import('./openai.ts')).createOpenAIProvider, true)

/** The providers this build can create. Bedrock needs the AWS SDK and is not one of them. */
export const PROVIDERS: Readonly<Partial<Record<ProviderType, ProviderFactory>>> = {
  mock: createMockProvider,
  openai,
  azure: openai,
  anthropic: onFirstUse(async () => (await import('./anthropic.ts')).createAnthropicProvider, false),
}

/**
 * A remote A2A agent as a provider (providers/a2a.ts), its SDK client imported when the first such agent is
 * used: processes that serve no A2A agent never load it.
 */
export function remoteAgentProvider(config: A2AProviderConfig): Provider {
  const real = import('./a2a.ts').then((m) => m.createA2AProvider(config))
  real.catch(() => undefined) // reported by the call that needs it
  return {
    provider: 'a2a',
    model: config.name,
    complete: (request) => real.then((p) => p.complete(request)),
    probe: (signal) => real.then((p) => p.probe(signal)),
  }
}

export interface ProviderSettings {
  /** Where defaults are read: OPENAI_API_KEY, OPENAI_BASE_URL, AZURE_OPENAI_API_KEY, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** A model with no API key anywhere: answered by the mock (`ark dev` on a laptop) or unavailable (default). */
  readonly withoutKey?: 'mock' | 'unavailable'
  /** Every model answered by the mock, keys or not (`ark run --provider mock`): nothing leaves the process. */
  readonly mockEverything?: boolean
  /** Per-attempt timeout of a provider call (default 60 s). */
  readonly timeoutMs?: number
  /** Retries of a failed call: 429, 5xx, connection errors (default 2). */
  readonly maxRetries?: number
  /** The HTTP client for upstream calls (default: the global fetch); on Node, gateway/fetch-node.ts. */
  readonly fetch?: Fetch
}

export { PROVIDER_DEFAULTS }

/** Returns the function that turns a Model's resolved values into its provider. */
export function providerFactory(
  settings: ProviderSettings = {},
  factories: Readonly<Partial<Record<ProviderType, ProviderFactory>>> = PROVIDERS,
): (config: ProviderConfig) => Provider {
  const env = settings.env ?? {}
  const read = (name: string) => {
    const v = env[name]
    return v === undefined || v === '' ? undefined : v
  }
  return (given) => {
    if (settings.mockEverything === true)
      return createMockProvider({
        ...given,
        provider: 'mock',
        properties: given.provider === 'mock' ? given.properties : {},
      })
    const config = withDefaults(given, read, settings)
    // From the config with the environment's key in it: that key is as secret as one from a Secret.
    const redactor = redactorOf(config)
    if (needsKey(config) && config.apiKey === undefined) {
      const missing = `no API key for ${config.provider} model ${config.model}: set the Model's apiKey (e.g. from a Secret) or ${keyVariable(config.provider)}`
      if (settings.withoutKey !== 'mock') throw new ProviderError(missing, { code: 'missing_api_key' })
      const mock = createMockProvider({ ...config, provider: 'mock', properties: {} })
      return withRedaction({ ...mock, standIn: `${missing}; the mock model answers instead` }, redactor)
    }
    const factory = factories[config.provider]
    if (factory === undefined) throw new Error(`provider ${config.provider} is not available in this build`)
    // Checked here, before the provider's SDK is loaded (onFirstUse), so that such a Model is unavailable from
    // the start rather than failing its first call.
    checkBaseUrl(config)
    let provider: Provider
    try {
      provider = factory(config)
    } catch (err) {
      // An SDK refusing the config (a malformed baseUrl) may quote it, credentials and all.
      throw redactedError(err, redactor)
    }
    return withRedaction(provider, redactor)
  }
}

function withDefaults(
  config: ProviderConfig,
  read: (name: string) => string | undefined,
  settings: ProviderSettings,
): ProviderConfig {
  let apiKey = config.apiKey
  let baseUrl = config.baseUrl
  // The process's key goes only where the process's own settings point: a Model naming another baseUrl
  // must bring its own key, or anyone who can write a Model could send the gateway's key to their server.
  const envKey = (keyName: string, urlName: string | undefined) => {
    const envUrl = urlName === undefined ? undefined : read(urlName)
    if (config.baseUrl !== undefined && config.baseUrl !== envUrl) return undefined
    return read(keyName)
  }
  if (config.provider === 'openai') {
    apiKey ??= envKey('OPENAI_API_KEY', 'OPENAI_BASE_URL')
    baseUrl ??= read('OPENAI_BASE_URL')
  } else if (config.provider === 'azure') {
    apiKey ??= read('AZURE_OPENAI_API_KEY')
  } else if (config.provider === 'anthropic') {
    apiKey ??= envKey('ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL')
    baseUrl ??= read('ANTHROPIC_BASE_URL')
  }
  return {
    ...config,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(baseUrl === undefined ? {} : { baseUrl }),
    timeoutMs: config.timeoutMs ?? settings.timeoutMs ?? PROVIDER_DEFAULTS.timeoutMs,
    maxRetries: config.maxRetries ?? settings.maxRetries ?? PROVIDER_DEFAULTS.maxRetries,
    ...(settings.fetch === undefined ? {} : { fetch: settings.fetch }),
  }
}

/** A self-hosted OpenAI-compatible server (a baseUrl) needs no key; the clouds do. */
/** A base URL that no client could call. Its text is not quoted: it may carry credentials. */
function checkBaseUrl(config: ProviderConfig): void {
  if (config.baseUrl === undefined || config.provider === 'mock') return
  let protocol: string | undefined
  try {
    protocol = new URL(config.baseUrl).protocol
  } catch {
    // Not a URL at all.
  }
  if (protocol !== 'http:' && protocol !== 'https:')
    throw new ProviderError(
      `the baseUrl of ${config.provider} model ${config.model} is not an http(s) URL: set an address such as https://api.example.com/v1`,
      { code: 'misconfigured' },
    )
}

function needsKey(config: ProviderConfig): boolean {
  if (config.provider === 'openai') return config.baseUrl === undefined
  return config.provider === 'azure' || config.provider === 'anthropic' || config.provider === 'bedrock'
}

function keyVariable(provider: ProviderType): string {
  return provider === 'anthropic'
    ? 'ANTHROPIC_API_KEY'
    : provider === 'azure'
      ? 'AZURE_OPENAI_API_KEY'
      : 'OPENAI_API_KEY'
}
