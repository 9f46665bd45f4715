import { parameters, parseDuration, ref } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { QueryTarget } from '../../resources.ts'
import {
  AnyValue,
  Bool,
  Conditions,
  Duration,
  Enum,
  FreeObject,
  Int,
  List,
  Name,
  NamespacedRef,
  Obj,
  Opt,
  Parameter,
  Str,
} from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

const TARGET_TYPES = ['agent', 'team', 'model', 'tool'] as const
const Target = Obj({ type: Enum(TARGET_TYPES), name: Name() })
const TokenUsage = Obj({ promptTokens: Int(), completionTokens: Int(), totalTokens: Int() })
const Response = Obj({ target: Opt(Target), content: Opt(Str()), raw: Opt(Str()), phase: Opt(Str()) })

export const Query = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Query',
  plural: 'queries',
  internal: 'Query',
  shortNames: ['qry'],
  crd: true,
  // A column shows one path: `.spec.targets[0].name`, so a query written with the singular `target` shows no
  // TARGET (kubectl get -o yaml does).
  printerColumns: [
    { name: 'Target', type: 'string', jsonPath: '.spec.targets[0].name' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Duration', type: 'string', jsonPath: '.status.duration' },
    { name: 'Tokens', type: 'integer', jsonPath: '.status.tokenUsage.totalTokens' },
    { name: 'Type', type: 'string', jsonPath: '.spec.type', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        type: Opt(Enum(['user', 'messages'], { default: 'user' })),
        input: AnyValue('A string (type user) or a list of OpenAI chat messages (type messages).'),
        parameters: Opt(List(Parameter)),
        target: Opt(Target),
        targets: Opt(List(Target)),
        selector: Opt(FreeObject('Label selector: the first matching agent, team, model or tool.')),
        memory: Opt(NamespacedRef),
        serviceAccount: Opt(Name()),
        sessionId: Opt(Name()),
        conversationId: Opt(Name()),
        timeout: Opt(Duration({ default: '5m' })),
        ttl: Opt(Duration({ default: '720h' })),
        cancel: Opt(Bool()),
        overrides: Opt(List(FreeObject())),
      },
      { required: ['input'] },
    ),
    status: Opt(
      Obj({
        phase: Opt(Enum(['pending', 'running', 'error', 'done', 'canceled'])),
        conditions: Opt(Conditions),
        responses: Opt(List(Response)),
        response: Opt(Response),
        tokenUsage: Opt(TokenUsage),
        conversationId: Opt(Str()),
        duration: Opt(Str()),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    const targets: QueryTarget[] = [
      ...(spec.target === undefined ? [] : [spec.target]),
      ...(spec.targets ?? []),
    ].map((t) => ({ type: t.type, name: t.name }))
    if (targets.length === 0 && spec.selector === undefined) {
      ctx.error('spec.targets', 'the query has no target: set target, targets or selector')
    }
    const type = spec.type ?? 'user'
    if (type === 'user' && typeof spec.input !== 'string') {
      ctx.error('spec.input', 'must be a string for type user')
    }
    if (type === 'messages' && !Array.isArray(spec.input)) {
      ctx.error('spec.input', 'must be a list of chat messages for type messages')
    }
    if (spec.overrides !== undefined) ctx.warn('spec.overrides', 'is not supported yet and is ignored')
    return {
      spec: {
        type,
        input: spec.input,
        targets,
        ...(spec.selector === undefined ? {} : { selector: spec.selector }),
        parameters: parameters(spec.parameters, 'spec.parameters', ctx),
        ...(spec.memory === undefined ? {} : { memory: ref(spec.memory, ctx) }),
        ...(spec.sessionId === undefined ? {} : { sessionId: spec.sessionId }),
        ...(spec.conversationId === undefined ? {} : { conversationId: spec.conversationId }),
        ...(spec.serviceAccount === undefined ? {} : { serviceAccount: spec.serviceAccount }),
        timeoutSeconds: parseDuration(spec.timeout ?? '5m'),
        ttlSeconds: parseDuration(spec.ttl ?? '720h'),
        cancel: spec.cancel ?? false,
      },
    }
  },
  // The shape seed 000 shows: conditions, duration, phase, responses[{content, phase, raw, target}], tokenUsage.
  toStatus: (status) => ({
    conditions: status.conditions.map((c) => ({ ...c })),
    ...(status.duration === undefined ? {} : { duration: status.duration }),
    ...(status.phase === undefined ? {} : { phase: status.phase }),
    ...(status.responses === undefined
      ? {}
      : {
          responses: status.responses.map((r) => ({
            content: r.content,
            phase: r.phase,
            ...(r.raw === undefined ? {} : { raw: r.raw }),
            target: { ...r.target },
          })),
        }),
    ...(status.tokenUsage === undefined ? {} : { tokenUsage: { ...status.tokenUsage } }),
  }),
})
