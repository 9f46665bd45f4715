/**
 * The dashboard at /ui in a real browser: Debian's chromium driven by playwright-core, against a real `ark dev`
 * over a folder of manifests. It reads what the page shows, as a user would: agents with their availability
 * and reasons, the playground's streamed answer with its tool calls, the runs list, the folder's Queries with
 * their Events, and, with API keys, a key form and a view limited to what the key may call. Screenshots of
 * each view are kept in test/artifacts/ (not committed) for a human to look at.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newKey } from '../gateway/index.ts'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { KeyedArk } from './keyed-ark.ts'
import { keysFile, startKeyedArk } from './keyed-ark.ts'

const CHROMIUM = process.env.ARK_CHROMIUM ?? '/usr/bin/chromium'
const ARTIFACTS = join(import.meta.dirname, 'artifacts')

/** Text a hostile manifest writes where the page shows it: it must stay text. */
const HOSTILE = '<img src=x onerror="window.pwned=1">'

const MANIFESTS = `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: math-agent }
spec:
  prompt: You do arithmetic.
  tools: [{ type: built-in, name: calculator }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: broken-agent }
spec:
  prompt: You have a tool that is not there.
  tools: [{ type: custom, name: does-not-exist }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: echo-agent }
spec: { prompt: You repeat. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: crew }
spec: { strategy: sequential, members: [{ name: echo-agent, type: agent }] }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: power-of-two }
spec:
  input: 'calculator {"expression": "2^10"}'
  targets: [{ type: agent, name: math-agent }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: nobody-home }
spec:
  input: '${HOSTILE}'
  targets: [{ type: agent, name: nobody }]
`

let browser: Browser
let dir: string
let ark: ArkProcess

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no chromium at ${CHROMIUM}: install Debian's (apt-get install chromium), or set ARK_CHROMIUM to another`,
    )
  await mkdir(ARTIFACTS, { recursive: true })
  dir = await mkdtemp(join(tmpdir(), 'ark-dashboard-'))
  await writeFile(join(dir, 'agents.yaml'), MANIFESTS)
  const started = await Promise.all([
    // Root in a container has no user namespaces for chromium's sandbox; the page is our own, on loopback.
    chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }),
    startArk(['dev', '-f', dir, '--port', '0', '--probe-interval', '0']),
  ])
  browser = started[0]
  ark = started[1]
}, 60_000)

afterAll(async () => {
  await browser.close()
  await ark.stop()
  await rm(dir, { recursive: true, force: true })
})

interface Opened {
  readonly page: Page
  /** What went wrong in the page: uncaught errors and console errors. */
  readonly errors: string[]
}

async function open(url: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(String(err)))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  await page.goto(url)
  return { page, errors }
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true })

/** The cells of the table row whose first cell is `name`. */
async function row(page: Page, table: string, name: string): Promise<string[]> {
  const cells = page
    .locator(`#${table} tbody tr`)
    .filter({ has: page.locator('td', { hasText: new RegExp(`^${name}$`) }) })
  await cells.first().waitFor()
  return cells.first().locator('td').allInnerTexts()
}

describe('the dashboard at /ui, in chromium', () => {
  it('lists agents, teams and models with their availability, and says why one cannot run', async () => {
    const { page, errors } = await open(`${ark.url}/ui`)
    const math = await row(page, 'agents', 'math-agent')
    expect(math.slice(0, 5)).toEqual(['math-agent', 'Agent', 'default', 'calculator', 'True'])
    const broken = await row(page, 'agents', 'broken-agent')
    expect(broken[4]).toBe('False')
    expect(broken[5]).toBe('ToolNotFound')
    // The reason's message is its tooltip.
    const title = await page
      .locator('#agents tbody tr', { hasText: 'broken-agent' })
      .locator('.reason')
      .getAttribute('title')
    expect(title).toMatch(/does-not-exist/)
    expect(await row(page, 'teams', 'crew')).toEqual([
      'crew',
      'Team',
      'sequential',
      'agent/echo-agent',
      'True',
      'AllDependenciesReady',
    ])
    expect((await row(page, 'models', 'default')).slice(0, 5)).toEqual([
      'default',
      'Model',
      'mock',
      'mock',
      'True',
    ])
    await shot(page, 'overview')
    expect(errors).toEqual([])
    await page.close()
  })

  it('the playground streams an answer and shows each tool call with its arguments and result; the run is listed', async () => {
    const { page, errors } = await open(`${ark.url}/ui#playground`)
    await page.locator('#chat-target option[value="agent/math-agent"]').waitFor({ state: 'attached' })
    // Only what can run is offered.
    const offered = await page.locator('#chat-target option').allTextContents()
    expect(offered).toEqual(expect.arrayContaining(['agent/math-agent', 'agent/echo-agent', 'team/crew']))
    expect(offered).not.toContain('agent/broken-agent')
    await page.selectOption('#chat-target', 'agent/math-agent')
    await page.fill('#chat-input', 'calculator {"expression": "6*7"}')
    await page.click('#chat-send')
    const answer = page.locator('.message.assistant[data-done="true"]')
    await answer.waitFor()
    expect(await answer.textContent()).toBe('calculator: 42')
    const call = page.locator('.tool-call[data-tool="calculator"]')
    expect(await call.getAttribute('data-outcome')).toBe('ok')
    expect(await call.innerText()).toContain('{"expression": "6*7"}')
    expect(await call.innerText()).toContain('42')
    // A second turn carries the conversation: the mock answers the last user message.
    await page.fill('#chat-input', 'calculator {"expression": "1+1"}')
    await page.press('#chat-input', 'Enter')
    await page.locator('.message.assistant[data-done="true"]').nth(1).waitFor()
    expect(await page.locator('.message.assistant').nth(1).textContent()).toBe('calculator: 2')
    await shot(page, 'playground')

    // A team: each member's turn is marked, and the team's output is the answer.
    await page.click('#chat-reset')
    await page.selectOption('#chat-target', 'team/crew')
    await page.fill('#chat-input', 'hello crew')
    await page.click('#chat-send')
    await page.locator('.message.assistant[data-done="true"]').waitFor()
    expect(await page.locator('#chat-log .step').allTextContents()).toContain('turn 1: echo-agent')
    expect(await page.locator('.message.member').allTextContents()).toEqual(['You said: hello crew'])
    expect(await page.locator('.message.assistant[data-done="true"]').textContent()).toBe(
      'You said: hello crew',
    )
    await shot(page, 'playground-team')

    await page.click('nav a[data-view="runs"]')
    const runs = page
      .locator('#runs-table tbody tr', { hasText: 'agent/math-agent' })
      .filter({ hasText: 'ui' })
    await expect.poll(() => runs.count(), { timeout: 10_000 }).toBe(2)
    const cells = await runs.first().locator('td').allInnerTexts()
    expect(cells.slice(1, 6)).toEqual(['agent/math-agent', 'ui', '', 'succeeded', 'answer'])
    expect(Number(cells[7])).toBe(2)
    expect(Number(cells[8])).toBeGreaterThan(0)
    // The Query run by the folder is there too.
    await expect
      .poll(() => page.locator('#runs-table tbody tr', { hasText: 'query' }).count(), { timeout: 10_000 })
      .toBeGreaterThan(0)
    await shot(page, 'runs')
    expect(errors).toEqual([])
    await page.close()
  })

  it("shows the folder's Queries with their phase, response and Events, and a hostile input as text", async () => {
    const { page, errors } = await open(`${ark.url}/ui#queries`)
    const done = page.locator('details.query[data-query="default/power-of-two"]')
    await done.locator('summary', { hasText: 'done' }).waitFor()
    await done.locator('summary').click()
    expect(await done.locator('pre').allTextContents()).toEqual([
      'calculator {"expression": "2^10"}',
      'calculator: 1024',
    ])
    const reasons = await done.locator('table.events tr td:nth-child(2)').allTextContents()
    expect(reasons[0]).toBe('QueryExecutionStart')
    expect(reasons).toEqual(
      expect.arrayContaining(['AgentExecutionStart', 'LLMCallStart', 'ToolCallStart', 'ToolCallComplete']),
    )
    expect(reasons.at(-1)).toBe('QueryExecutionComplete')

    const failed = page.locator('details.query[data-query="default/nobody-home"]')
    await failed.locator('summary', { hasText: 'error' }).waitFor()
    await failed.locator('summary').click()
    expect(await failed.innerText()).toMatch(/TargetNotFound/)
    // What a manifest says is shown as it is, never run as HTML.
    expect(await failed.locator('pre').first().textContent()).toBe(HOSTILE)
    expect(await page.locator('#queries img').count()).toBe(0)
    expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined()
    // It stays open across the page's refreshes.
    await page.waitForTimeout(2500)
    expect(await failed.getAttribute('open')).not.toBeNull()
    await shot(page, 'queries')
    expect(errors).toEqual([])
    await page.close()
  })
})

describe('the dashboard with API keys', () => {
  const mathOnly = newKey()
  const openaiOnly = newKey()
  let keyed: KeyedArk

  beforeAll(async () => {
    keyed = await startKeyedArk(
      'dashboard',
      MANIFESTS,
      keysFile([
        {
          id: 'math-viewer',
          sha256: mathOnly.sha256,
          more: '    targets: [agent/math-agent]\n    routes: [ui]\n',
        },
        { id: 'sdk-only', sha256: openaiOnly.sha256, more: '    routes: [openai]\n' },
      ]),
      ['--probe-interval', '0'],
    )
  }, 30_000)

  afterAll(async () => {
    await keyed.stop()
  })

  it('asks for a key, refuses one whose scope leaves the dashboard out, and shows only what a key may call', async () => {
    const { page, errors } = await open(`${keyed.ark.url}/ui`)
    const form = page.locator('#key-form')
    await form.waitFor()
    expect(await page.locator('#key-error').textContent()).toMatch(/no API key/)
    await page.fill('#key-input', 'ark_not-a-real-key')
    await page.click('#key-form button')
    await expect.poll(() => page.locator('#key-error').textContent()).toMatch(/not valid/)
    await page.fill('#key-input', openaiOnly.key)
    await page.click('#key-form button')
    await expect.poll(() => page.locator('#key-error').textContent()).toMatch(/sdk-only.*may not call \/ui/)
    await shot(page, 'key-refused')

    await page.fill('#key-input', mathOnly.key)
    await page.click('#key-form button')
    await form.waitFor({ state: 'hidden' })
    await row(page, 'agents', 'math-agent')
    const names = await page.locator('#agents tbody tr td:first-child').allTextContents()
    expect(names).toEqual(['math-agent'])
    expect(await page.locator('#teams tbody td').allTextContents()).toEqual(['No teams.'])
    expect(await page.locator('#status').textContent()).toMatch(/key math-viewer/)
    // The key stays with the tab, never in the URL, and is not written into the page.
    expect(page.url()).not.toContain(mathOnly.key)
    expect(await page.content()).not.toContain(mathOnly.key)

    // The Queries of targets it may not call are not shown; its own target's is.
    await page.click('nav a[data-view="queries"]')
    await page.locator('details.query[data-query="default/power-of-two"]').waitFor()
    expect(await page.locator('details.query').count()).toBe(1)

    await page.click('nav a[data-view="playground"]')
    await page.fill('#chat-input', 'calculator {"expression": "3*3"}')
    await page.click('#chat-send')
    await page.locator('.message.assistant[data-done="true"]').waitFor()
    expect(await page.locator('.message.assistant').textContent()).toBe('calculator: 9')
    await shot(page, 'keyed')

    // The key is rotated out: the page's next read is refused, and what the key was shown goes with it.
    await writeFile(
      keyed.keysPath,
      keysFile([{ id: 'sdk-only', sha256: openaiOnly.sha256, more: '    routes: [openai]\n' }]),
    )
    await page.click('nav a[data-view="overview"]')
    await form.waitFor({ timeout: 10_000 })
    expect(await page.locator('#key-error').textContent()).toMatch(/not valid/)
    expect(await page.locator('#agents tbody tr').count()).toBe(0)
    // The refusals above are the only errors the browser saw: the 401s and 403 of the key form.
    expect(errors.every((e) => /status of 40[13]/.test(e))).toBe(true)
    await page.close()
  })
})
