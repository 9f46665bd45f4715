import { conditionsAs, parameters, parseDuration, ref } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import {
  Bool,
  Conditions,
  Duration,
  Enum,
  FreeObject,
  List,
  Name,
  Obj,
  Opt,
  Parameter,
  Str,
} from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const Evaluation = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Evaluation',
  plural: 'evaluations',
  internal: 'Evaluation',
  shortNames: ['eval'],
  crd: true,
  // No SCORE column: nothing in ark writes status.score yet, so it would always be blank.
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        type: Opt(Enum(['direct', 'baseline', 'query', 'batch', 'event'], { default: 'direct' })),
        config: FreeObject('Type-specific settings (input/output, queryRef, items, rules).'),
        evaluator: Opt(Obj({ name: Name(), namespace: Opt(Str()), parameters: Opt(List(Parameter)) })),
        timeout: Opt(Duration({ default: '5m' })),
        ttl: Opt(Duration({ default: '720h' })),
      },
      { required: ['config'] },
    ),
    status: Opt(
      Obj({
        phase: Opt(Enum(['pending', 'running', 'error', 'done', 'canceled'])),
        message: Opt(Str()),
        score: Opt(Str()),
        passed: Opt(Bool()),
        duration: Opt(Str()),
        conditions: Opt(Conditions),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    return {
      spec: {
        type: spec.type ?? 'direct',
        config: spec.config,
        ...(spec.evaluator === undefined
          ? {}
          : {
              evaluator: {
                ref: ref(spec.evaluator, ctx),
                parameters: parameters(spec.evaluator.parameters, 'spec.evaluator.parameters', ctx),
              },
            }),
        timeoutSeconds: parseDuration(spec.timeout ?? '5m'),
        ttlSeconds: parseDuration(spec.ttl ?? '720h'),
      },
    }
  },
  toStatus: (status) => ({
    ...(status.phase === undefined ? {} : { phase: status.phase }),
    ...(status.message === undefined ? {} : { message: status.message }),
    conditions: conditionsAs(status, 'Completed'),
  }),
})
