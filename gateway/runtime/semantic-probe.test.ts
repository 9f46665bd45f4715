import { describe, expect, it } from 'vitest'
import { DEFAULT_VALIDATOR_PROMPT, expectedWord, judge } from './semantic-probe.ts'

describe('the semantic check', () => {
  it('takes the expected word from the end of the prompt', () => {
    expect(expectedWord(DEFAULT_VALIDATOR_PROMPT)).toBe('HEALTHY')
    expect(expectedWord('Answer with one word: "OK".')).toBe('OK')
    expect(expectedWord('Say something nice')).toBeUndefined()
  })

  it('passes an answer that holds the expected word, in any case', () => {
    expect(judge(DEFAULT_VALIDATOR_PROMPT, 'Healthy.').ready).toBe(true)
    expect(judge(DEFAULT_VALIDATOR_PROMPT, '  HEALTHY  ').ready).toBe(true)
  })

  it('fails an answer without it, and says what came back', () => {
    const v = judge(DEFAULT_VALIDATOR_PROMPT, 'I am not able to help with that.')
    expect(v.ready).toBe(false)
    expect(v.reason).toBe('the model answered "I am not able to help with that." where HEALTHY was expected')
  })

  it('fails an empty answer whatever the prompt, and passes any text when no word is asked for', () => {
    expect(judge('Say something nice', '   ').ready).toBe(false)
    expect(judge('Say something nice', 'Something nice').ready).toBe(true)
  })

  it('cuts a long answer in the reason', () => {
    const v = judge(DEFAULT_VALIDATOR_PROMPT, 'x'.repeat(500))
    expect(v.reason.length).toBeLessThan(200)
  })
})
