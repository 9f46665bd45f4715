import {
  conditionsAs,
  headers,
  optionalValueSource,
  parseDuration,
  valueMap,
  valueSource,
} from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { ModelSpec, ProviderType } from '../../resources.ts'
import {
  Conditions,
  Duration,
  Enum,
  Header,
  Int,
  List,
  Obj,
  Opt,
  Str,
  Type,
  ValueSource,
} from '../../schema.ts'
import type { Static } from 'typebox'
import { ARK_GROUP } from '../group.ts'

const Properties = Type.Record(Type.String(), ValueSource)
const Headers = List(Header)

const OpenAIConfig = Obj({
  baseUrl: Opt(ValueSource),
  apiKey: Opt(ValueSource),
  headers: Opt(Headers),
  properties: Opt(Properties),
})
const AzureConfig = Obj({
  baseUrl: ValueSource,
  apiKey: Opt(ValueSource),
  apiVersion: Opt(ValueSource),
  headers: Opt(Headers),
  properties: Opt(Properties),
})
const AnthropicConfig = Obj({
  baseUrl: Opt(ValueSource),
  apiKey: Opt(ValueSource),
  version: Opt(ValueSource),
  headers: Opt(Headers),
  properties: Opt(Properties),
})
const BedrockConfig = Obj({
  region: Opt(ValueSource),
  baseUrl: Opt(ValueSource),
  accessKeyId: Opt(ValueSource),
  secretAccessKey: Opt(ValueSource),
  sessionToken: Opt(ValueSource),
  apiKey: Opt(ValueSource),
  modelArn: Opt(ValueSource),
  maxTokens: Opt(Int({ minimum: 1, maximum: 100000 })),
  temperature: Opt(Str({ pattern: '^(0(\\.\\d+)?|1(\\.0+)?)$' })),
  properties: Opt(Properties),
})

/** ark's offline model: `latencyMs` and `chunkDelayMs` properties make it slow on purpose. */
const MockConfig = Obj({ properties: Opt(Properties) })

const PROVIDERS = ['openai', 'azure', 'anthropic', 'bedrock', 'mock'] as const

export const Model = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Model',
  plural: 'models',
  internal: 'Model',
  crd: true,
  printerColumns: [
    { name: 'Provider', type: 'string', jsonPath: '.spec.provider' },
    { name: 'Model', type: 'string', jsonPath: '.spec.model.value' },
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="ModelAvailable")].status' },
    {
      name: 'Reason',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="ModelAvailable")].reason',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        model: ValueSource,
        provider: Opt(
          Enum(PROVIDERS, {
            description: 'Who serves the model. `mock` is ark’s deterministic offline model.',
          }),
        ),
        type: Opt(
          Enum(['completions', 'openai', 'azure', 'bedrock', 'anthropic'], {
            description: '`completions`; the provider names are the deprecated pre-`provider` form.',
          }),
        ),
        config: Opt(
          Obj({
            openai: Opt(OpenAIConfig),
            azure: Opt(AzureConfig),
            anthropic: Opt(AnthropicConfig),
            bedrock: Opt(BedrockConfig),
            mock: Opt(MockConfig),
          }),
        ),
        pollInterval: Opt(Duration({ default: '1m' })),
      },
      { required: ['model'] },
    ),
    status: Opt(Obj({ resolvedAddress: Opt(Str()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    const legacy = spec.type !== undefined && spec.type !== 'completions' ? spec.type : undefined
    let provider: ProviderType | undefined = spec.provider ?? legacy
    if (provider === undefined) {
      ctx.error('spec.provider', `is required: one of ${PROVIDERS.join(', ')}`)
      provider = 'mock'
    } else if (spec.provider === undefined) {
      ctx.warn('spec.type', `type: ${legacy} is deprecated; write provider: ${legacy}`)
    }
    const model = valueSource(spec.model, 'spec.model', ctx) ?? { value: '' }
    const base = {
      headers: [],
      properties: [],
      pollIntervalSeconds: parseDuration(spec.pollInterval ?? '1m'),
    }
    const config = spec.config ?? {}
    const others = Object.keys(config).filter((k) => k !== provider)
    if (others.length > 0)
      ctx.error(`spec.config.${others[0]}`, `does not match provider ${provider}; remove it`)

    const common = (c: Static<typeof OpenAIConfig> | undefined, at: string) => {
      const baseUrl = optionalValueSource(c?.baseUrl, `${at}.baseUrl`, ctx)
      const apiKey = optionalValueSource(c?.apiKey, `${at}.apiKey`, ctx)
      return {
        ...(baseUrl === undefined ? {} : { baseUrl }),
        ...(apiKey === undefined ? {} : { apiKey }),
        headers: headers(c?.headers, `${at}.headers`, ctx),
        properties: valueMap(c?.properties, `${at}.properties`, ctx),
      }
    }

    let out: ModelSpec
    switch (provider) {
      case 'mock':
        out = {
          provider,
          model,
          ...base,
          properties: valueMap(config.mock?.properties, 'spec.config.mock.properties', ctx),
        }
        break
      case 'openai':
        out = { provider, model, ...base, ...common(config.openai, 'spec.config.openai') }
        break
      case 'azure': {
        const c = config.azure
        if (c === undefined)
          ctx.error('spec.config.azure', 'is required for provider azure (baseUrl, apiKey, apiVersion)')
        out = { provider, model, ...base, ...common(c, 'spec.config.azure') }
        const v = optionalValueSource(c?.apiVersion, 'spec.config.azure.apiVersion', ctx)
        if (v !== undefined) out = { ...out, apiVersion: v }
        break
      }
      case 'anthropic': {
        const c = config.anthropic
        out = { provider, model, ...base, ...common(c, 'spec.config.anthropic') }
        const v = optionalValueSource(c?.version, 'spec.config.anthropic.version', ctx)
        if (v !== undefined) out = { ...out, apiVersion: v }
        break
      }
      case 'bedrock': {
        const c = config.bedrock
        const at = 'spec.config.bedrock'
        const vs = (k: 'region' | 'accessKeyId' | 'secretAccessKey' | 'sessionToken' | 'modelArn') => {
          const v = optionalValueSource(c?.[k], `${at}.${k}`, ctx)
          return v === undefined ? {} : { [k]: v }
        }
        out = {
          provider,
          model,
          ...base,
          ...common(c, at),
          bedrock: {
            ...vs('region'),
            ...vs('accessKeyId'),
            ...vs('secretAccessKey'),
            ...vs('sessionToken'),
            ...vs('modelArn'),
            ...(c?.maxTokens === undefined ? {} : { maxTokens: c.maxTokens }),
            ...(c?.temperature === undefined ? {} : { temperature: c.temperature }),
          },
        }
        break
      }
    }
    return { spec: out }
  },
  toStatus: (status) => ({
    ...(status.resolvedAddress === undefined ? {} : { resolvedAddress: status.resolvedAddress }),
    conditions: conditionsAs(status, 'ModelAvailable'),
  }),
})
