import { describe, expect, it } from 'vitest'
import { Principal, parseScope } from './scope.ts'

const at = (namespace: string, name: string) => ({ namespace, name })

describe('Principal', () => {
  it('may do everything without a scope', () => {
    const who = new Principal('a')
    expect(who.unrestricted).toBe(true)
    expect(who.allowsRoute('mcp')).toBe(true)
    expect(who.allowsTarget('Model', at('x', 'y'))).toBe(true)
    expect(who.allowsName('agent/anything')).toBe(true)
  })

  it('reads targets as clients name them: without a namespace, the default one', () => {
    const who = new Principal('a', { targets: ['agent/help-*', 'team/prod/*', 'model/*/gpt-?'] })
    expect(who.allowsTarget('Agent', at('default', 'help-desk'))).toBe(true)
    expect(who.allowsTarget('Agent', at('prod', 'help-desk'))).toBe(false)
    expect(who.allowsTarget('Agent', at('default', 'helper'))).toBe(false)
    expect(who.allowsTarget('Team', at('prod', 'crew'))).toBe(true)
    expect(who.allowsTarget('Team', at('default', 'crew'))).toBe(false)
    expect(who.allowsTarget('Model', at('any', 'gpt-5'))).toBe(true)
    expect(who.allowsTarget('Model', at('any', 'gpt-51'))).toBe(false)
    // Dots in names are dots, not "any character".
    expect(new Principal('b', { targets: ['model/v1.2'] }).allowsTarget('Model', at('default', 'v1x2'))).toBe(
      false,
    )
  })

  it('narrows by namespace and target together; an empty list allows nothing', () => {
    const who = new Principal('a', { namespaces: ['team-*'], targets: ['*/*/research'] })
    expect(who.allowsTarget('Agent', at('team-a', 'research'))).toBe(true)
    expect(who.allowsTarget('Team', at('team-b', 'research'))).toBe(true)
    expect(who.allowsTarget('Agent', at('other', 'research'))).toBe(false)
    expect(who.allowsTarget('Agent', at('team-a', 'writer'))).toBe(false)
    const none = new Principal('n', { targets: [] })
    expect(none.allowsTarget('Agent', at('default', 'x'))).toBe(false)
    const all = new Principal('s', { targets: ['*'], routes: ['openai'] })
    expect(all.allowsTarget('Model', at('z', 'y'))).toBe(true)
    expect(all.allowsRoute('openai')).toBe(true)
    expect(all.allowsRoute('a2a')).toBe(false)
    expect(new Principal('m', { routes: [] }).allowsRoute('metrics')).toBe(false)
  })

  it('reads a name that resolves to nothing by its spelling', () => {
    const who = new Principal('a', { namespaces: ['team-a'] }, 'default')
    expect(who.allowsName('ghost')).toBe(false)
    expect(who.allowsName('agent/ghost')).toBe(false)
    expect(who.allowsName('agent/team-a/ghost')).toBe(true)
    expect(who.allowsName('team/team-b/ghost')).toBe(false)
    // A spelling no target has cannot exist: nothing to hide.
    expect(who.allowsName('robot/x')).toBe(true)
  })
})

describe('parseScope', () => {
  it('is undefined when nothing narrows', () => {
    expect(parseScope({}, 'k')).toBeUndefined()
  })

  it('refuses what is not a pattern, saying where', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ routes: ['openai', 'admin'] }, 'k.routes[1]: "admin" is not one of'],
      [{ namespaces: ['Team'] }, 'k.namespaces[0]: is not a namespace'],
      [{ namespaces: ['a.b'] }, 'k.namespaces[0]: "a.b" is not a namespace'],
      [{ targets: ['agent'] }, 'k.targets[0]: "agent" is not a target pattern'],
      [{ targets: ['robot/x'] }, 'k.targets[0]: "robot/x" is not a target pattern'],
      [{ targets: ['agent/a/b/c'] }, 'k.targets[0]: "agent/a/b/c" is not a target pattern'],
      [{ targets: ['agent/'] }, 'k.targets[0]: "agent/" is not a target pattern'],
      [{ targets: [1] }, 'k.targets: must be a list of strings'],
    ]
    for (const [value, message] of cases) expect(() => parseScope(value, 'k'), message).toThrow(message)
  })
})
