// The built-in `calculator` tool: a hand-written tokenizer and recursive-descent parser that evaluates as it
// parses. Model output is untrusted, so nothing here ever reaches eval/Function, identifiers are looked up in
// Maps (never on objects, where 'constructor' or '__proto__' would resolve), and recursion is bounded explicitly.

/** Thrown for every bad input; the message says what went wrong and where (1-based column). */
export class CalculatorError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CalculatorError'
  }
}

// Longer input is almost certainly not arithmetic, and the limit also caps work and argument counts.
const MAX_LENGTH = 10_000
// Each level costs a handful of stack frames; 200 is far beyond real use and far below any stack limit.
const MAX_DEPTH = 200

interface MathFunction {
  readonly min: number
  readonly max: number
  readonly apply: (args: readonly number[]) => number
}

// Arity is checked before apply, so the fallbacks never take effect.
const unary = (f: (x: number) => number): MathFunction => ({ min: 1, max: 1, apply: (a) => f(a[0] ?? NaN) })

const FUNCTIONS: ReadonlyMap<string, MathFunction> = new Map([
  ['sqrt', unary(Math.sqrt)],
  ['abs', unary(Math.abs)],
  ['floor', unary(Math.floor)],
  ['ceil', unary(Math.ceil)],
  ['round', unary(Math.round)],
  ['ln', unary(Math.log)],
  ['log', unary(Math.log10)],
  ['log2', unary(Math.log2)],
  ['exp', unary(Math.exp)],
  ['sin', unary(Math.sin)],
  ['cos', unary(Math.cos)],
  ['tan', unary(Math.tan)],
  ['min', { min: 1, max: Infinity, apply: (a) => Math.min(...a) }],
  ['max', { min: 1, max: Infinity, apply: (a) => Math.max(...a) }],
  ['pow', { min: 2, max: 2, apply: (a) => (a[0] ?? NaN) ** (a[1] ?? NaN) }],
])

const CONSTANTS: ReadonlyMap<string, number> = new Map([
  ['pi', Math.PI],
  ['e', Math.E],
])

const KNOWN = `constants ${[...CONSTANTS.keys()].join(', ')}; functions ${[...FUNCTIONS.keys()].join(', ')}`

type TokenKind = 'number' | 'identifier' | 'operator' | '(' | ')' | ',' | 'end'

interface Token {
  readonly kind: TokenKind
  /** Source text, for messages. */
  readonly text: string
  /** Normalised operator ('**' becomes '^'); empty for other kinds. */
  readonly op: string
  readonly value: number
  readonly column: number
}

const isDigit = (ch: string): boolean => ch >= '0' && ch <= '9'
const isIdentifierStart = (ch: string): boolean =>
  (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch === '_'
const isIdentifierPart = (ch: string): boolean => isIdentifierStart(ch) || isDigit(ch)
const isSpace = (ch: string): boolean => /^\s$/u.test(ch)

// Keeps messages short when the model sends a huge identifier or number.
const show = (text: string): string => `'${text.length > 24 ? `${text.slice(0, 24)}…` : text}'`
const describe = (token: Token): string => (token.kind === 'end' ? 'end of expression' : show(token.text))
const at = (token: Token): string => `at column ${String(token.column)}`

// Lazy: the parser pulls one token at a time, so an unknown identifier is reported before whatever follows
// it is scanned ('process.exit(1)' fails on 'process', not on '.').
class Lexer {
  readonly #input: string
  #pos = 0
  #current: Token

  constructor(input: string) {
    this.#input = input
    this.#current = this.#scan()
  }

  peek(): Token {
    return this.#current
  }

  next(): Token {
    const token = this.#current
    this.#current = this.#scan()
    return token
  }

  #token(kind: TokenKind, start: number, end: number, op = '', value = NaN): Token {
    this.#pos = end
    return { kind, text: this.#input.slice(start, end), op, value, column: start + 1 }
  }

  #scan(): Token {
    const input = this.#input
    while (this.#pos < input.length && isSpace(input.charAt(this.#pos))) this.#pos++
    const start = this.#pos
    if (start >= input.length) return this.#token('end', start, start)
    const ch = input.charAt(start)
    if (isDigit(ch) || (ch === '.' && isDigit(input.charAt(start + 1)))) return this.#number(start)
    if (isIdentifierStart(ch)) {
      let end = start + 1
      while (isIdentifierPart(input.charAt(end))) end++
      return this.#token('identifier', start, end)
    }
    if (ch === '*' && input.charAt(start + 1) === '*') return this.#token('operator', start, start + 2, '^')
    if ('+-*/%^'.includes(ch)) return this.#token('operator', start, start + 1, ch)
    if (ch === '(' || ch === ')' || ch === ',') return this.#token(ch, start, start + 1)
    const char = String.fromCodePoint(input.codePointAt(start) ?? 0)
    throw new CalculatorError(`unexpected character ${JSON.stringify(char)} at column ${String(start + 1)}`)
  }

  #number(start: number): Token {
    const input = this.#input
    let end = start
    while (isDigit(input.charAt(end))) end++
    if (input.charAt(end) === '.') {
      end++
      while (isDigit(input.charAt(end))) end++
    }
    // Only an exponent when digits follow, so '2e' is not silently read as a number.
    if (input.charAt(end) === 'e' || input.charAt(end) === 'E') {
      let p = end + 1
      if (input.charAt(p) === '+' || input.charAt(p) === '-') p++
      if (isDigit(input.charAt(p))) {
        end = p
        while (isDigit(input.charAt(end))) end++
      }
    }
    // The text is validated above, so Number() sees only a plain decimal literal.
    return this.#token('number', start, end, '', Number(input.slice(start, end)))
  }
}

const isOperator = (token: Token, ...ops: string[]): boolean =>
  token.kind === 'operator' && ops.includes(token.op)

// Checked at every step, not only at the end, so e.g. 1/(10^400) reports the overflow rather than returning 0.
const finite = (value: number, token: Token): number => {
  if (Number.isFinite(value)) return value
  throw new CalculatorError(
    `result is not a finite number ${at(token)}: ${describe(token)} gave ${String(value)}`,
  )
}

// Precedence, loosest first: + -, then * / %, then unary + -, then ^ (right-associative, so -2^2 = -4).
class Parser {
  readonly #lexer: Lexer
  #depth = 0

  constructor(input: string) {
    this.#lexer = new Lexer(input)
  }

  parse(): number {
    const value = this.#expression()
    const token = this.#lexer.peek()
    if (token.kind === ')') throw new CalculatorError(`unbalanced parentheses: unexpected ')' ${at(token)}`)
    if (token.kind !== 'end') {
      throw new CalculatorError(
        `unexpected ${describe(token)} ${at(token)} (expected an operator or the end of the expression)`,
      )
    }
    return value
  }

  // Every recursive step goes through here, so deep input fails cleanly instead of overflowing the stack.
  #nested(token: Token, parse: () => number): number {
    if (this.#depth >= MAX_DEPTH) {
      throw new CalculatorError(
        `expression is nested too deeply (more than ${String(MAX_DEPTH)} levels) ${at(token)}`,
      )
    }
    this.#depth++
    const value = parse()
    this.#depth--
    return value
  }

  #expression(): number {
    let left = this.#term()
    for (;;) {
      const op = this.#lexer.peek()
      if (!isOperator(op, '+', '-')) return left
      this.#lexer.next()
      const right = this.#term()
      left = finite(op.op === '+' ? left + right : left - right, op)
    }
  }

  #term(): number {
    let left = this.#unary()
    for (;;) {
      const op = this.#lexer.peek()
      if (!isOperator(op, '*', '/', '%')) return left
      this.#lexer.next()
      const right = this.#unary()
      if (op.op === '*') {
        left = finite(left * right, op)
        continue
      }
      if (right === 0) {
        throw new CalculatorError(`${op.op === '/' ? 'division' : 'modulo'} by zero ${at(op)}`)
      }
      left = finite(op.op === '/' ? left / right : left % right, op)
    }
  }

  #unary(): number {
    const op = this.#lexer.peek()
    if (!isOperator(op, '+', '-')) return this.#power()
    this.#lexer.next()
    const operand = this.#nested(op, () => this.#unary())
    return op.op === '-' ? -operand : operand
  }

  #power(): number {
    const base = this.#primary()
    const op = this.#lexer.peek()
    if (!isOperator(op, '^')) return base
    this.#lexer.next()
    // The exponent is a full unary operand: right-associative (2^3^2 = 2^9) and may be signed (2^-1).
    const exponent = this.#nested(op, () => this.#unary())
    return finite(base ** exponent, op)
  }

  #primary(): number {
    const token = this.#lexer.peek()
    if (token.kind === 'number') {
      this.#lexer.next()
      return finite(token.value, token)
    }
    if (token.kind === 'identifier') return this.#identifier(token)
    if (token.kind === '(') {
      this.#lexer.next()
      const value = this.#nested(token, () => this.#expression())
      this.#close(token, "')'")
      return value
    }
    throw new CalculatorError(
      `expected a number, constant, function or '(' ${at(token)} but found ${describe(token)}`,
    )
  }

  #identifier(token: Token): number {
    // Looked up before advancing, so nothing after an unknown name is scanned (see Lexer).
    const name = token.text.toLowerCase()
    const constant = CONSTANTS.get(name)
    if (constant !== undefined) {
      this.#lexer.next()
      return constant
    }
    const fn = FUNCTIONS.get(name)
    if (fn === undefined) {
      throw new CalculatorError(`unknown identifier ${show(token.text)} ${at(token)} (known: ${KNOWN})`)
    }
    this.#lexer.next()
    const open = this.#lexer.peek()
    if (open.kind !== '(') {
      throw new CalculatorError(
        `function '${name}' must be called with parentheses, e.g. ${name}(…), ${at(open)}`,
      )
    }
    this.#lexer.next()
    const args = this.#arguments(open)
    this.#close(open, "',' or ')'")
    if (args.length < fn.min || args.length > fn.max) {
      const expected =
        fn.max === Infinity
          ? `at least ${String(fn.min)}`
          : `${String(fn.min)} argument${fn.min === 1 ? '' : 's'}`
      throw new CalculatorError(
        `wrong number of arguments: ${name} expects ${expected}, got ${String(args.length)} ${at(token)}`,
      )
    }
    return finite(fn.apply(args), token)
  }

  #arguments(open: Token): number[] {
    const args: number[] = []
    if (this.#lexer.peek().kind === ')') return args
    for (;;) {
      args.push(this.#nested(open, () => this.#expression()))
      if (this.#lexer.peek().kind !== ',') return args
      this.#lexer.next()
    }
  }

  #close(open: Token, expected: string): void {
    const token = this.#lexer.peek()
    if (token.kind === ')') {
      this.#lexer.next()
      return
    }
    if (token.kind === 'end') {
      throw new CalculatorError(`unbalanced parentheses: '(' ${at(open)} is never closed`)
    }
    throw new CalculatorError(`expected ${expected} ${at(token)} but found ${describe(token)}`)
  }
}

/** Evaluates an arithmetic expression. Throws CalculatorError with a message that says what and where (column). */
export function evaluate(expression: string): number {
  if (expression.length > MAX_LENGTH) {
    throw new CalculatorError(
      `expression is too long (${String(expression.length)} characters, maximum ${String(MAX_LENGTH)})`,
    )
  }
  if (expression.trim() === '') throw new CalculatorError('empty expression')
  const result = new Parser(expression).parse()
  // -0 is an artefact of the arithmetic, not something a caller wants to see printed.
  return result === 0 ? 0 : result
}
