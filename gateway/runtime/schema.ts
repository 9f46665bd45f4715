/**
 * JSON Schema validation for tool arguments and agent answers, compiled once per schema (TypeBox's JIT) and
 * reporting in the same words as manifest validation: `city: is required`.
 */
import { Compile } from 'typebox/schema'
import type { JsonSchema } from '../../controller/api/index.ts'
import { describeSchemaErrors } from '../../controller/api/index.ts'

export interface JsonValidator {
  /** Problems with `value`, one line each; empty when it is valid. */
  problems(value: unknown): string[]
}

const VALID: string[] = []

export function compileJsonSchema(schema: JsonSchema): JsonValidator {
  // The schema is user input (a Tool's inputSchema); TypeBox accepts any object as a schema.
  const validator = Compile(schema as Parameters<typeof Compile>[0])
  return {
    problems(value) {
      if (validator.Check(value)) return VALID
      const [, errors] = validator.Errors(value)
      const issues = describeSchemaErrors(errors, value, {
        showValues: true,
        unknownFields: 'error',
      })
      return issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`))
    },
  }
}
