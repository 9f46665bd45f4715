// The ark dashboard: one ES module on the browser's own APIs, no framework and no build step. It reads
// GET /ui/api/state every few seconds and renders it; the playground posts to /ui/api/chat and renders the run's
// events as they stream. Everything from the server is put in the page as text (textContent), never as HTML:
// names, reasons and answers come from manifests and models.
// @ts-check

const REFRESH_MS = 2000
const KEY_STORAGE = 'ark-dashboard-key'

/** @type {string | null} */
let apiKey = sessionStorage.getItem(KEY_STORAGE)
/** @type {any} */
let state = null
/** @type {{ role: string, content: string }[]} */
let conversation = []
let refreshing = false

/** @param {string} id */
function byId(id) {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`the page has no #${id}`)
  return found
}

/**
 * An element with its text and classes.
 * @param {string} tag
 * @param {string} [text]
 * @param {string} [className]
 */
function el(tag, text, className) {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  if (className !== undefined) node.className = className
  return node
}

/** @param {string} status */
function pill(status) {
  return el('span', status, `pill ${status}`)
}

/** @param {Record<string, string>} [extra] */
function headers(extra) {
  /** @type {Record<string, string>} */
  const h = { ...extra }
  if (apiKey !== null) h.authorization = `Bearer ${apiKey}`
  return h
}

/** @param {string} text */
function setStatus(text) {
  byId('status').textContent = text
}

/** Shows the key form; `message` says why (a refused key). @param {string} [message] */
function askForKey(message) {
  byId('key-form').hidden = false
  const error = byId('key-error')
  error.hidden = message === undefined
  error.textContent = message ?? ''
}

/** The error message of an OpenAI-shaped error body, or the status line. @param {Response} res */
async function errorOf(res) {
  try {
    const body = await res.json()
    return body?.error?.message ?? `${res.status} ${res.statusText}`
  } catch {
    return `${res.status} ${res.statusText}`
  }
}

async function refresh() {
  // Known to need a key and none given yet: asking again would only be refused again.
  if (refreshing || (apiKey === null && !byId('key-form').hidden)) return
  refreshing = true
  try {
    const res = await fetch('/ui/api/state', { headers: headers(), cache: 'no-store' })
    if (res.status === 401 || res.status === 403) {
      // A refused key is forgotten, and so is what an earlier key was shown.
      apiKey = null
      sessionStorage.removeItem(KEY_STORAGE)
      state = null
      clear()
      askForKey(await errorOf(res))
      setStatus('needs an API key')
      return
    }
    if (!res.ok) {
      setStatus(`cannot read the gateway: ${await errorOf(res)}`)
      return
    }
    byId('key-form').hidden = true
    state = await res.json()
    render()
    setStatus(`updated ${new Date(state.at).toLocaleTimeString()}${state.key ? ` · key ${state.key}` : ''}`)
  } catch (err) {
    setStatus(`cannot reach the gateway: ${err instanceof Error ? err.message : String(err)}`)
  } finally {
    refreshing = false
  }
}

/**
 * Replaces a table's rows; a row per item, or one row that says there is none.
 * @param {string} id
 * @param {any[]} items
 * @param {(item: any) => (string | number | Node)[]} cells
 * @param {string} empty
 */
function fillTable(id, items, cells, empty) {
  const body = byId(id).querySelector('tbody')
  if (body === null) return
  const columns = byId(id).querySelectorAll('th').length
  const rows = items.map((item) => {
    const tr = el('tr')
    for (const cell of cells(item)) {
      const td = el('td')
      if (cell instanceof Node) td.append(cell)
      else td.textContent = String(cell)
      tr.append(td)
    }
    return tr
  })
  if (rows.length === 0) {
    const td = el('td', empty, 'empty')
    td.setAttribute('colspan', String(columns))
    const tr = el('tr')
    tr.append(td)
    rows.push(tr)
  }
  body.replaceChildren(...rows)
}

/** The reason, with the message as its tooltip. @param {{ reason?: string, message?: string }} available */
function reasonCell(available) {
  const span = el('span', available.reason ?? '', 'reason')
  if (available.message) span.title = available.message
  return span
}

/** The target name without the default namespace noise. @param {{ namespace: string, name: string }} r */
function shortName(r) {
  return r.namespace === 'default' ? r.name : `${r.namespace}/${r.name}`
}

/** Empties every view (a key was refused). */
function clear() {
  for (const body of document.querySelectorAll('tbody')) body.replaceChildren()
  byId('queries-list').replaceChildren()
  byId('chat-target').replaceChildren()
}

function render() {
  if (state === null) return
  fillTable(
    'agents',
    state.agents,
    (a) => [
      shortName(a),
      a.kind,
      a.model,
      a.tools.join(', '),
      pill(a.available.status),
      reasonCell(a.available),
      a.pool?.queued ?? 0,
      a.pool?.inFlight ?? 0,
      a.pool?.concurrency ?? '',
      a.pool?.workers ?? (a.pool ? 'in process' : ''),
    ],
    'No agents.',
  )
  fillTable(
    'teams',
    state.teams,
    (t) => [
      shortName(t),
      t.kind,
      t.strategy,
      t.members.join(', '),
      pill(t.available.status),
      reasonCell(t.available),
    ],
    'No teams.',
  )
  fillTable(
    'models',
    state.models,
    (m) => [shortName(m), m.kind, m.provider, m.model, pill(m.available.status), reasonCell(m.available)],
    'No models.',
  )
  fillTable(
    'runs-table',
    state.runs,
    (r) => [
      new Date(r.startedAt).toLocaleTimeString(),
      r.target,
      r.via ?? '',
      r.key ?? '',
      pill(r.status),
      r.error ? withTitle(r.outcome ?? '', r.error) : (r.outcome ?? ''),
      r.seconds ?? '',
      r.iterations ?? '',
      r.tokens?.total ?? '',
    ],
    'No runs yet: send one from the playground, or with any OpenAI client.',
  )
  renderQueries()
  renderTargets()
}

/** @param {string} text @param {string} title */
function withTitle(text, title) {
  const span = el('span', text)
  span.title = title
  return span
}

/** Which Queries the reader has opened, kept across refreshes. */
const openQueries = new Set()

function renderQueries() {
  const list = byId('queries-list')
  if (state.queries.length === 0) {
    list.replaceChildren(
      el('p', 'No Queries. Apply one (kind: Query) and it shows here with its Events.', 'hint'),
    )
    return
  }
  list.replaceChildren(
    ...state.queries.map((/** @type {any} */ q) => {
      const id = `${q.namespace}/${q.name}`
      const details = /** @type {HTMLDetailsElement} */ (el('details', undefined, 'query'))
      details.dataset.query = id
      details.open = openQueries.has(id)
      details.addEventListener('toggle', () => {
        if (details.open) openQueries.add(id)
        else openQueries.delete(id)
      })
      const summary = el('summary')
      summary.append(el('strong', shortName(q)), ' ', pill(q.phase), ` → ${q.targets.join(', ')}`)
      if (q.duration) summary.append(` · ${q.duration}`)
      if (q.tokens !== undefined) summary.append(` · ${q.tokens} tokens`)
      details.append(summary)
      details.append(el('h3', 'Input'), el('pre', q.input))
      for (const r of q.responses) {
        details.append(el('h3', `Response from ${r.target} (${r.phase})`), el('pre', r.content))
      }
      for (const c of q.conditions) {
        if (c.reason)
          details.append(el('p', `${c.reason}: ${c.message}`, c.status === 'False' ? 'error' : 'hint'))
      }
      if (q.events === undefined) {
        details.append(el('p', 'Events: kubectl describe query shows them (another process ran it).', 'hint'))
      } else {
        const table = el('table', undefined, 'events')
        const head = el('tr')
        for (const h of ['Type', 'Reason', 'Message']) head.append(el('th', h))
        table.append(head)
        for (const e of q.events) {
          const tr = el('tr')
          tr.append(el('td', e.type), el('td', e.reason), el('td', e.message))
          table.append(tr)
        }
        details.append(el('h3', 'Events'), table)
      }
      return details
    }),
  )
}

/** The playground's targets: the agents and teams that can run now, keeping the reader's choice. */
function renderTargets() {
  const select = /** @type {HTMLSelectElement} */ (byId('chat-target'))
  const chosen = select.value
  const targets = [...state.agents, ...state.teams]
    .filter((t) => t.available.status === 'True')
    .map((t) => t.id)
  const current = [...select.options].map((o) => o.value)
  if (current.length === targets.length && current.every((v, i) => v === targets[i])) return
  select.replaceChildren(...targets.map((/** @type {string} */ id) => new Option(id, id)))
  if (targets.includes(chosen)) select.value = chosen
}

function showView() {
  const view = (location.hash || '#overview').slice(1)
  for (const section of document.querySelectorAll('.view')) {
    ;/** @type {HTMLElement} */ (section).hidden = section.id !== view
  }
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('data-view') === view) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
}

/**
 * The server-sent events of a response body, one parsed `data:` JSON at a time.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(event: any) => void} onEvent
 */
async function readEvents(body, onEvent) {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += decoder.decode(value, { stream: true })
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n')
      if (data !== '') onEvent(JSON.parse(data))
    }
  }
}

/** @param {SubmitEvent} event */
async function send(event) {
  event.preventDefault()
  const input = /** @type {HTMLTextAreaElement} */ (byId('chat-input'))
  const target = /** @type {HTMLSelectElement} */ (byId('chat-target')).value
  const text = input.value.trim()
  if (text === '' || target === '') return
  const log = byId('chat-log')
  const sendButton = /** @type {HTMLButtonElement} */ (byId('chat-send'))
  input.value = ''
  sendButton.disabled = true
  conversation.push({ role: 'user', content: text })
  log.append(el('div', text, 'message user'))
  const turn = el('div', undefined, 'turn')
  log.append(turn)
  // The text streaming now: the agent's answer, or in a team the current member's turn (each its own).
  /** @type {HTMLElement | null} */
  let streaming = null
  let teamTurns = 0
  /** @type {Map<string, HTMLElement>} */
  const toolCards = new Map()
  const scroll = () => (log.scrollTop = log.scrollHeight)
  try {
    const res = await fetch('/ui/api/chat', {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({ model: target, messages: conversation }),
    })
    if (!res.ok || res.body === null) {
      if (res.status === 401) askForKey(await errorOf(res))
      turn.append(el('div', await errorOf(res), 'message failed'))
      conversation.pop()
      return
    }
    await readEvents(res.body, (e) => {
      switch (e.type) {
        case 'llm.start':
          turn.append(el('div', `calling model ${e.model}`, 'step'))
          break
        case 'delta':
          if (streaming === null) {
            streaming = el('div', '', teamTurns > 0 ? 'message assistant member' : 'message assistant')
            turn.append(streaming)
          }
          streaming.textContent += e.text
          break
        case 'tool.start': {
          const card = el('div', undefined, 'tool-call')
          card.dataset.tool = e.tool
          card.append(el('strong', e.tool), ' ', el('code', e.arguments))
          toolCards.set(e.id, card)
          turn.append(card)
          break
        }
        case 'tool.complete': {
          const card = toolCards.get(e.id)
          if (card === undefined) break
          card.dataset.outcome = e.outcome
          card.append(el('div', `→ ${e.outcome} in ${e.seconds.toFixed(3)} s`), el('code', e.result))
          break
        }
        case 'team.turn':
          teamTurns++
          streaming = null
          turn.append(el('div', `turn ${e.turn}: ${e.member}`, 'step'))
          break
        case 'done': {
          // An agent's streamed text is its answer; a team's answer is its output, after its members' turns.
          let answer = teamTurns > 0 ? null : streaming
          if (answer === null) {
            answer = el('div', e.content, 'message assistant')
            turn.append(answer)
          }
          answer.dataset.done = 'true'
          conversation.push({ role: 'assistant', content: e.content })
          turn.append(
            el(
              'div',
              `${e.outcome} · ${teamTurns > 0 ? `${teamTurns} turn(s)` : `${e.iterations} model call(s)`} · ${e.usage.totalTokens} tokens`,
              'usage',
            ),
          )
          break
        }
        case 'error':
          turn.append(el('div', e.error.message, 'message failed'))
          conversation.pop()
          break
      }
      scroll()
    })
  } catch (err) {
    turn.append(
      el('div', `the request failed: ${err instanceof Error ? err.message : String(err)}`, 'message failed'),
    )
  } finally {
    sendButton.disabled = false
    scroll()
    void refresh()
  }
}

function start() {
  byId('key-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const value = /** @type {HTMLInputElement} */ (byId('key-input')).value.trim()
    if (value === '') return
    apiKey = value
    sessionStorage.setItem(KEY_STORAGE, value)
    void refresh()
  })
  byId('chat-form').addEventListener('submit', (event) => void send(/** @type {SubmitEvent} */ (event)))
  byId('chat-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault()
      const form = /** @type {HTMLFormElement} */ (byId('chat-form'))
      form.requestSubmit()
    }
  })
  byId('chat-reset').addEventListener('click', () => {
    conversation = []
    byId('chat-log').replaceChildren()
  })
  window.addEventListener('hashchange', showView)
  showView()
  void refresh()
  setInterval(() => {
    if (!document.hidden) void refresh()
  }, REFRESH_MS)
}

start()
