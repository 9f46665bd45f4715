import { describe, expect, it } from 'vitest'
import { LIMITS, parseManifestText } from './parse.ts'
import type { FileState } from './source.ts'

function mapping(keys: number, indent = ''): string {
  return Array.from({ length: keys }, (_, i) => `${indent}k${String(i)}: ${String(i)}`).join('\n') + '\n'
}

/** The single problem of a file refused as a whole. */
function refusal(state: FileState): { line?: number; message: string } {
  expect(state.status).toBe('unreadable')
  const problems = state.status === 'unreadable' ? state.problems : []
  expect(problems).toHaveLength(1)
  const { line, message } = problems[0]!
  return line === undefined ? { message } : { line, message }
}

describe('duplicate keys', () => {
  it('reads a mapping of 40,000 keys and finds a duplicate at its end, naming the key and both lines', () => {
    const text = `kind: A\n---\n${mapping(40_000)}k7: again\n`
    const state = parseManifestText(text, 'big.yaml')
    expect(state.status).toBe('loaded')
    if (state.status !== 'loaded') return
    expect(state.documents.map((d) => d.value)).toEqual([{ kind: 'A' }])
    expect(state.problems).toEqual([
      {
        severity: 'error',
        file: 'big.yaml',
        index: 1,
        line: 40_003,
        message:
          'YAML error: duplicate key "k7" at line 40003, column 1 (first at line 10); keys of a mapping must be unique',
      },
    ])
  })

  it('compares keys as the object compares them, in nested and flow mappings too', () => {
    const cases: Record<string, string> = {
      // 1 and "1" both become the property "1": one would silently replace the other.
      '1: a\n"1": b\n': 'duplicate key "1" at line 2, column 1 (first at line 1)',
      'spec:\n  tools:\n    - { name: a, name: b }\n':
        'duplicate key "name" at line 3, column 18 (first at line 3)',
      '- [a: 1]\n- {x: 1, "x": 2}\n': 'duplicate key "x" at line 2, column 10 (first at line 2)',
      '~: a\nnull: b\n': 'duplicate key "" at line 2, column 1 (first at line 1)',
    }
    for (const [text, message] of Object.entries(cases)) {
      expect(refusal(parseManifestText(text, 'd.yaml')).message).toContain(message)
    }
    // Same spelling in different mappings, or different types that stay apart, are fine.
    expect(parseManifestText('a: { x: 1 }\nb: { x: 2 }\ntrue: 1\n"yes": 2\n', 'ok.yaml').status).toBe(
      'loaded',
    )
  })
})

describe('limits', () => {
  it('refuses a 2 MB flow sequence at the node limit, with the line where it was reached', () => {
    const text = `a: 1\nb: [${Array<string>(1_000_000).fill('1').join(',')}]\n`
    expect(refusal(parseManifestText(text, 'flow.yaml'))).toEqual({
      line: 2,
      message: `over the limit of 100,000 YAML nodes for one manifest file; split it into several smaller files`,
    })
  })

  it('refuses a file of line breaks at the token limit', () => {
    const text = 'a: 1\n' + '\n'.repeat(LIMITS.maxTokens)
    expect(refusal(parseManifestText(text, 'blank.yaml')).message).toBe(
      'over the limit of 500,000 YAML tokens (comments, line breaks and indentation count) for one manifest file; split it into several smaller files',
    )
  })

  it('refuses 10,000-deep nesting, block and flow, without a stack overflow; 100 levels are fine', () => {
    const depth =
      'collections nested deeper than the limit of 100 levels for one manifest file; flatten the structure'
    const deep: Record<string, string> = {
      flow: '['.repeat(10_000) + ']'.repeat(10_000),
      'flow mappings': '{a: '.repeat(10_000) + '1' + '}'.repeat(10_000),
      'block sequences': '- '.repeat(10_000) + 'x',
      'block mappings': Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1',
    }
    for (const [name, text] of Object.entries(deep)) {
      expect({ name, ...refusal(parseManifestText(text, 'deep.yaml')) }).toMatchObject({
        name,
        message: depth,
      })
    }
    const limit = LIMITS.maxDepth
    const atLimit = parseManifestText('['.repeat(limit) + ']'.repeat(limit), 'ok.yaml')
    expect(atLimit.status).toBe('loaded')
    const over = parseManifestText('['.repeat(limit + 1) + ']'.repeat(limit + 1), 'deep.yaml')
    expect(refusal(over).message).toBe(depth)
    const blockAtLimit = Array.from({ length: limit }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1'
    expect(parseManifestText(blockAtLimit, 'ok.yaml').status).toBe('loaded')
  })

  it('refuses more aliases than the limit, whose resolution is quadratic', () => {
    const text = Array.from({ length: 2_000 }, (_, i) => `- &a${String(i)} x\n- *a${String(i)}`).join('\n')
    expect(refusal(parseManifestText(text, 'aliases.yaml'))).toEqual({
      line: 2002,
      message: 'over the limit of 1,000 aliases (*name) for one manifest file; write the values out instead',
    })
    // A few are fine.
    const few = parseManifestText('base: &b { x: 1 }\nuse: *b\n', 'ok.yaml')
    expect(few).toMatchObject({ status: 'loaded', documents: [{ value: { base: { x: 1 }, use: { x: 1 } } }] })
  })

  it('refuses the whole file, documents before the limit included, so that its last state is kept', () => {
    const text = `apiVersion: v1\nkind: ConfigMap\n---\n${'['.repeat(1000)}`
    expect(parseManifestText(text, 'f.yaml')).toEqual({
      file: 'f.yaml',
      status: 'unreadable',
      problems: [
        {
          severity: 'error',
          file: 'f.yaml',
          line: 4,
          message:
            'collections nested deeper than the limit of 100 levels for one manifest file; flatten the structure',
        },
      ],
    })
  })
})
