import { describe, expect, it } from 'vitest'
import { CalculatorError, evaluate } from './calculator.ts'

// Asserts the error class and a fragment of the message, so a wrong error for the right reason still fails.
const rejects = (expression: string, ...fragments: (string | RegExp)[]): void => {
  let caught: unknown
  try {
    evaluate(expression)
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(CalculatorError)
  const message = (caught as CalculatorError).message
  for (const fragment of fragments) {
    if (typeof fragment === 'string') expect(message).toContain(fragment)
    else expect(message).toMatch(fragment)
  }
}

describe('evaluate: precedence and associativity', () => {
  it.each([
    ['2+3*4', 14],
    ['(2+3)*4', 20],
    ['2^3^2', 512],
    ['(2^3)^2', 64],
    ['-2^2', -4],
    ['(-2)^2', 4],
    ['2^-1', 0.5],
    ['2**3', 8],
    ['2**3**2', 512],
    ['10%4', 2],
    ['-7%3', -1],
    ['7/2', 3.5],
    ['10-4-3', 3],
    ['64/4/2', 8],
    ['2*3%4', 2],
    ['--3', 3],
    ['+-+3', -3],
    ['2*-3', -6],
    ['2--3', 5],
    ['1-2^2*3', -11],
  ])('%s = %d', (expression, expected) => {
    expect(evaluate(expression)).toBe(expected)
  })
})

describe('evaluate: numbers', () => {
  it.each([
    ['42', 42],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['1.', 1],
    ['1e3', 1000],
    ['2.5E-2', 0.025],
    ['1e+2', 100],
    ['.5e1', 5],
    ['0.1+0.2', 0.1 + 0.2],
  ])('%s = %d', (expression, expected) => {
    expect(evaluate(expression)).toBe(expected)
  })

  it('normalises -0 to 0', () => {
    expect(Object.is(evaluate('-0'), 0)).toBe(true)
    expect(Object.is(evaluate('0*-1'), 0)).toBe(true)
  })
})

describe('evaluate: functions and constants', () => {
  it.each([
    ['pi', Math.PI],
    ['e', Math.E],
    ['2*pi', 2 * Math.PI],
    ['sqrt(16)', 4],
    ['abs(-3)', 3],
    ['floor(2.7)', 2],
    ['ceil(2.1)', 3],
    ['round(2.5)', 3],
    ['ln(e)', 1],
    ['log(1000)', 3],
    ['log2(8)', 3],
    ['exp(0)', 1],
    ['sin(0)', 0],
    ['cos(0)', 1],
    ['tan(0)', 0],
    ['min(3, 1, 2)', 1],
    ['max(3, 1, 2)', 3],
    ['max(5)', 5],
    ['pow(2, 10)', 1024],
    ['sqrt(pow(3, 2) + pow(4, 2))', 5],
    ['max(1, min(7, 2*4), -1)', 7],
    ['-sqrt(4)^2', -4],
  ])('%s = %d', (expression, expected) => {
    expect(evaluate(expression)).toBeCloseTo(expected, 12)
  })

  it('ignores case in names', () => {
    expect(evaluate('SQRT(16)')).toBe(4)
    expect(evaluate('Pi')).toBe(Math.PI)
    expect(evaluate('PoW(2, 3) + E - e')).toBe(8)
  })

  it('evaluates trigonometry at pi', () => {
    expect(evaluate('sin(pi/2)')).toBeCloseTo(1, 12)
    expect(evaluate('cos(pi)')).toBeCloseTo(-1, 12)
  })
})

describe('evaluate: whitespace', () => {
  it.each([
    ['  2 + 3  ', 5],
    ['\t2\n*\r\n3', 6],
    ['( 2 + 3 ) * 4', 20],
    ['2 ** 3', 8],
    ['- 2 ^ 2', -4],
    ['sqrt ( 16 )', 4],
    ['max( 1 ,2 , 3 )', 3],
  ])('%j = %d', (expression, expected) => {
    expect(evaluate(expression)).toBe(expected)
  })
})

describe('evaluate: errors', () => {
  it('rejects empty expressions', () => {
    rejects('', 'empty expression')
    rejects('  \t\n ', 'empty expression')
  })

  it('rejects unknown identifiers and lists what is known', () => {
    rejects('foo', "unknown identifier 'foo' at column 1", 'pi', 'sqrt', 'pow')
    rejects('1 + bar * 2', "unknown identifier 'bar' at column 5")
    rejects('x(1)', "unknown identifier 'x'")
  })

  it('rejects JavaScript that is not arithmetic as unknown identifiers', () => {
    rejects('process.exit(1)', "unknown identifier 'process' at column 1")
    rejects('constructor', "unknown identifier 'constructor' at column 1")
    rejects('__proto__', "unknown identifier '__proto__'")
    rejects('toString()', "unknown identifier 'toString'")
    rejects('1 + globalThis', "unknown identifier 'globalThis' at column 5")
  })

  it('rejects unbalanced parentheses', () => {
    rejects('(2+3', "'(' at column 1 is never closed")
    rejects('((1)', 'unbalanced parentheses', 'column 1')
    rejects('2+3)', "unbalanced parentheses: unexpected ')' at column 4")
    rejects('sqrt(4', "'(' at column 5 is never closed")
    rejects('()', "found ')'", 'column 2')
    rejects('(2 3)', "expected ')' at column 4 but found '3'")
  })

  it('rejects trailing garbage', () => {
    rejects('2 + 2 abc', "unexpected 'abc' at column 7")
    rejects('2 3', "unexpected '3' at column 3")
    rejects('pi(2)', "unexpected '(' at column 3")
    rejects('2e', "unexpected 'e' at column 2")
    rejects('1.2.3', "unexpected '.3' at column 4")
  })

  it('rejects characters outside the grammar', () => {
    rejects('2 $ 3', 'unexpected character "$" at column 3')
    rejects('2 = 2', 'unexpected character "=" at column 3')
    rejects('"2"', 'unexpected character')
    rejects('2; 3', 'column 2')
    rejects('a.b', "unknown identifier 'a'")
  })

  it('rejects invalid operator sequences', () => {
    rejects('2 * / 3', "at column 5 but found '/'")
    rejects('2 * * 3', 'column 5')
    rejects('2 ^ * 3', 'column 5')
    rejects('2 +', 'at column 4 but found end of expression')
    rejects('* 2', 'column 1')
    rejects('2 ***3', "at column 5 but found '*'")
  })

  it('rejects wrong arity', () => {
    rejects('sqrt()', 'sqrt expects 1 argument, got 0 at column 1')
    rejects('sqrt(1, 2)', 'sqrt expects 1 argument, got 2')
    rejects('pow(1)', 'pow expects 2 arguments, got 1 at column 1')
    rejects('1 + pow(1, 2, 3)', 'pow expects 2 arguments, got 3 at column 5')
    rejects('min()', 'min expects at least 1, got 0')
    rejects('max(1,)', "found ')'")
    rejects('pow(1 2)', "expected ',' or ')' at column 7 but found '2'")
    rejects('sqrt', "function 'sqrt' must be called with parentheses")
    rejects('sqrt 4', 'column 6')
  })

  it('rejects division and modulo by zero with the column', () => {
    rejects('1/0', 'division by zero at column 2')
    rejects('1 + 4 / (2 - 2)', 'division by zero at column 7')
    rejects('0/0', 'division by zero')
    rejects('5 % 0', 'modulo by zero at column 3')
  })

  it('rejects results that are not finite', () => {
    rejects('10^400', 'result is not a finite number at column 3', 'Infinity')
    rejects('1/(10^400)', 'result is not a finite number at column 6')
    rejects('sqrt(-1)', 'result is not a finite number at column 1', 'NaN')
    rejects('ln(0)', 'result is not a finite number')
    rejects('log(-1)', 'result is not a finite number')
    rejects('(-8)^(1/3)', 'result is not a finite number')
    rejects('exp(1000)', 'result is not a finite number')
    rejects('1e400', 'result is not a finite number at column 1')
    rejects('1e308 * 10', 'result is not a finite number at column 7')
    rejects('-1e308 - 1e308', 'result is not a finite number')
  })

  it('rejects expressions longer than 10,000 characters', () => {
    rejects(`${'1+'.repeat(5000)}1`, 'too long', '10001')
    expect(evaluate(`${'1+'.repeat(4999)}1 `)).toBe(5000)
  })

  it('uses CalculatorError, a real Error with a name', () => {
    try {
      evaluate('1/0')
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(Error)
      expect(error).toBeInstanceOf(CalculatorError)
      expect((error as Error).name).toBe('CalculatorError')
    }
  })
})

describe('evaluate: nesting', () => {
  const parens = (n: number): string => `${'('.repeat(n)}1${')'.repeat(n)}`

  it('accepts 200 levels', () => {
    expect(evaluate(parens(200))).toBe(1)
    expect(evaluate(`${'-'.repeat(200)}1`)).toBe(1)
    expect(evaluate(`${'-'.repeat(199)}1`)).toBe(-1)
    expect(evaluate(`${'sqrt('.repeat(200)}1${')'.repeat(200)}`)).toBe(1)
  })

  it('rejects more than 200 levels', () => {
    rejects(parens(201), 'nested too deeply', 'column 201')
    rejects(`${'-'.repeat(201)}1`, 'nested too deeply', 'column 201')
    rejects(`${'sqrt('.repeat(201)}1${')'.repeat(201)}`, 'nested too deeply')
    rejects(`${'2^'.repeat(300)}1`, 'nested too deeply')
    // Parentheses and unary operators share one budget.
    rejects(`${'(-'.repeat(101)}1${')'.repeat(101)}`, 'nested too deeply')
  })

  it('rejects deep input within the length limit without overflowing the stack', () => {
    rejects(parens(4999), 'nested too deeply', 'column 201')
    rejects(`${'-'.repeat(9999)}1`, 'nested too deeply')
    rejects('('.repeat(10_000), 'nested too deeply')
    rejects(`${'+'.repeat(9999)}1`, 'nested too deeply')
  })

  it('rejects 100k-deep input cleanly', () => {
    rejects(parens(100_000), 'too long')
    rejects('('.repeat(100_000), 'too long')
    rejects(`${'-'.repeat(100_000)}1`, 'too long')
    rejects('-'.repeat(100_000), 'too long')
  })
})
