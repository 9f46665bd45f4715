import { describe, expect, it } from 'vitest'
import { parseTemplate } from './template.ts'

describe('parseTemplate: rendering', () => {
  it('renders {{.name}} without spaces', () => {
    expect(parseTemplate('Hello {{.name}}!').render({ name: 'Ada' })).toBe('Hello Ada!')
  })

  it('renders {{ .name }} with spaces and tabs inside the braces', () => {
    const t = parseTemplate('Hello {{ .name }} and {{\t.other\t}}.')
    expect(t.render({ name: 'Ada', other: 'Bob' })).toBe('Hello Ada and Bob.')
  })

  it('renders a reference at the very start and the very end', () => {
    expect(parseTemplate('{{.a}} middle {{.b}}').render({ a: 'A', b: 'B' })).toBe('A middle B')
    expect(parseTemplate('{{.a}}').render({ a: 'only' })).toBe('only')
  })

  it('renders adjacent references', () => {
    expect(parseTemplate('{{.a}}{{.b}}{{.a}}').render({ a: '1', b: '2' })).toBe('121')
  })

  it('renders every use of a repeated name', () => {
    const t = parseTemplate('{{.x}} + {{ .x }} = 2 * {{.x}}')
    expect(t.render({ x: 'y' })).toBe('y + y = 2 * y')
  })

  it('leaves references to undeclared names as written', () => {
    const t = parseTemplate('Hi {{.name}}, from {{ .sender }} in {{.city}}.')
    expect(t.render({ name: 'Ada' })).toBe('Hi Ada, from {{ .sender }} in {{.city}}.')
    expect(t.render({})).toBe('Hi {{.name}}, from {{ .sender }} in {{.city}}.')
  })

  it('leaves undeclared names that are also Object.prototype members as written', () => {
    const text = 'a {{.constructor}} b {{ .toString }} c {{.__proto__}} d {{.hasOwnProperty}}'
    expect(parseTemplate(text).render({})).toBe(text)
    expect(parseTemplate('{{.constructor}}').render({ constructor: 'declared' })).toBe('declared')
  })

  it('renders declared names whose value is undefined as empty', () => {
    const t = parseTemplate('[{{.a}}] [{{ .b }}]')
    expect(t.render({ a: undefined, b: 'B' })).toBe('[] [B]')
    expect(t.render({ a: '', b: undefined })).toBe('[] []')
  })

  it('does not re-expand references inside values', () => {
    const t = parseTemplate('{{.a}} {{.b}}')
    expect(t.render({ a: '{{.b}}', b: 'B' })).toBe('{{.b}} B')
  })

  it('does not treat malformed references as references', () => {
    const text = '{{name}} {{ . name }} {{.1abc}} {{.a-b}} {.a} {{.a}'
    const t = parseTemplate(text)
    expect(t.parameters).toEqual([])
    expect(t.render({ name: 'x', a: 'y', '1abc': 'z' })).toBe(text)
  })

  it('returns text without references unchanged', () => {
    const text = 'You are a helpful agent.\nBe brief. {not a reference} {{}}'
    const t = parseTemplate(text)
    expect(t.render({})).toBe(text)
    expect(t.render({ anything: 'value' })).toBe(text)
    expect(parseTemplate('').render({ a: 'b' })).toBe('')
  })

  it('can be rendered many times with different values', () => {
    const t = parseTemplate('Dear {{.name}},')
    expect(t.render({ name: 'A' })).toBe('Dear A,')
    expect(t.render({ name: 'B' })).toBe('Dear B,')
    expect(t.render({})).toBe('Dear {{.name}},')
  })
})

describe('parseTemplate: parameters', () => {
  it('lists the names used, in order of first use, without duplicates', () => {
    const t = parseTemplate('{{.b}} {{ .a }} {{.b}} {{.c_1}} {{.a}} {{._x}}')
    expect(t.parameters).toEqual(['b', 'a', 'c_1', '_x'])
  })

  it('is empty for a template without references', () => {
    expect(parseTemplate('plain text').parameters).toEqual([])
  })
})
