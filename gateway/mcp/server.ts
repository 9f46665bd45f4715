/**
 * ark's agents and teams as MCP tools, for any MCP host (an IDE, a desktop assistant, another agent): `POST /mcp`
 * lists every Available agent and team, `/mcp/agent/<name>` (or `/mcp/agent/<ns>/<name>`) just that agent,
 * `/mcp/team/<name>` (or `/mcp/team/<ns>/<name>`) just that team. Streamable HTTP
 * through the SDK's Web-standard server transport, so it runs on Node and Deno alike. (The MCP client, for
 * the tools agents call, is runtime/mcp/.)
 *
 * - A tool's input is `{ message, parameters? }` (parameters: the agent's queryParameterRef values); its
 *   result is the agent's answer as text, or `isError` with why the run failed.
 * - A call runs through Admission, as a chat completion does: same availability checks, same pools, same
 *   metrics. A caller that sends a progressToken gets a progress notification per model call and tool call;
 *   `notifications/cancelled` cancels the run. A closed connection does not: the transport spec says a
 *   disconnection is not a cancellation (the run goes on to its end or its deadline; with no event store,
 *   its answer is then dropped).
 * - Sessions (Mcp-Session-Id) live in this gateway replica: cancellation has to reach the transport that
 *   runs the call. They are bounded in number: past the bound a new one is refused (503), never made room
 *   for by ending another host's session. A session idle for sessionIdleMs with no call running ends; an
 *   unknown session is a 404, after which MCP clients start a new one. Put replicas behind session
 *   affinity (the Mcp-Session-Id header).
 * - Tool names: an agent of namespace `default` is its name; another is `<namespace>__<name>` (resource
 *   names cannot hold `_`, so it cannot clash); a team is always `team__<namespace>__<name>`, whose two
 *   separators no agent's name has.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import type * as ServerModule from '@modelcontextprotocol/sdk/server/index.js'
import type { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import type * as TransportModule from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js'
import type * as Types from '@modelcontextprotocol/sdk/types.js'
import type { ObjectRef, ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Admission, Refusal } from '../admission.ts'
import { FORBIDDEN, notAllowedMessage } from '../auth/scope.ts'
import type { Principal } from '../auth/scope.ts'
import { failureOf } from '../admission.ts'
import { loadOnce } from '../load-once.ts'
import type { Logger } from '../log.ts'
import type { AgentEvent } from '../runtime/events.ts'
import { queryParametersOf } from '../runtime/prepare.ts'
import { succeeded } from '../runtime/task.ts'

export interface McpServeOptions {
  /** Sessions held at once by this replica (default 1000); past it, the one idle longest is closed. */
  readonly maxSessions?: number
  /** A session unused this long is closed (default 30 min). */
  readonly sessionIdleMs?: number
  /** Longest request body, in bytes (the gateway's maxBodyBytes). */
  readonly maxBodyBytes: number
}

export interface McpDeps {
  readonly catalog: Catalog
  readonly admission: Admission
  readonly log: Logger
}

/** Which agents and teams a route serves: every one, or the one named in its path. */
export type McpScope = { readonly all: true } | { readonly agent: ObjectRef } | { readonly team: ObjectRef }

/** What a tool runs: an agent, or a team. */
type Target = ResourceOf<'Agent'> | ResourceOf<'Team'>

interface Session {
  readonly scope: string
  /** The API key's id that opened it: another key cannot use it (its requests find no such session). */
  readonly key: string | undefined
  /** Who calls now: the key's latest scope, which the tool list and calls follow. */
  principal: Principal | undefined
  /** When a request last came in or a call last ended. */
  lastUsed: number
  /** Tool calls running: a session with one is never swept, however long the call takes. */
  running: number
}

const SERVER_INFO = { name: 'ark', version: '0.1.0' }
/** What the SDK's own transport answers for a session it does not know (with HTTP 404). */
const SESSION_NOT_FOUND = -32001
/** Implementation-defined server error (JSON-RPC reserves -32000 to -32099): no room for another session. */
const SERVER_BUSY = -32000

/** JSON-RPC's codes for a request that is not valid, and for params that are not (the SDK's ErrorCode). */
const INVALID_REQUEST = -32600
const INVALID_PARAMS = -32602

type Transport = WebStandardStreamableHTTPServerTransport

/**
 * The SDK's server parts, loaded with the first session: with the zod schemas of its types they are about
 * 20 MiB of a process, which a gateway that nobody reaches over MCP never needs.
 */
interface Sdk {
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- see #server
  readonly Server: typeof ServerModule.Server
  readonly Transport: typeof TransportModule.WebStandardStreamableHTTPServerTransport
  readonly McpError: typeof Types.McpError
  readonly ListToolsRequestSchema: typeof Types.ListToolsRequestSchema
  readonly CallToolRequestSchema: typeof Types.CallToolRequestSchema
}

// A failed load (a broken install) is tried again by the next session.
const loadSdk = loadOnce(async (): Promise<Sdk> => {
  const [server, transport, types] = await Promise.all([
    import('@modelcontextprotocol/sdk/server/index.js'),
    import('@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
  ])
  return {
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- see #server
    Server: server.Server,
    Transport: transport.WebStandardStreamableHTTPServerTransport,
    McpError: types.McpError,
    ListToolsRequestSchema: types.ListToolsRequestSchema,
    CallToolRequestSchema: types.CallToolRequestSchema,
  }
})

/** The MCP endpoints of one gateway: sessions, and a handler per request. */
export class McpEndpoints {
  readonly #deps: McpDeps
  readonly #options: Required<McpServeOptions>
  readonly #sessions = new Map<string, { readonly session: Session; readonly transport: Transport }>()
  /** Sessions whose initialize is being answered: they count against maxSessions already. */
  #opening = 0
  #closed = false
  readonly #sweeper: ReturnType<typeof setInterval>

  constructor(deps: McpDeps, options: McpServeOptions) {
    this.#deps = deps
    this.#options = { maxSessions: 1000, sessionIdleMs: 30 * 60_000, ...options }
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(60_000, this.#options.sessionIdleMs))
    // Not what keeps a process alive; Deno's numeric timers have no unref.
    ;(this.#sweeper as { unref?: () => void }).unref?.()
  }

  /**
   * Answers one HTTP request to an MCP endpoint; `body` is the parsed JSON of a POST, `principal` who sends it
   * when the gateway asks for API keys.
   */
  async handle(request: Request, scope: McpScope, body: unknown, principal?: Principal): Promise<Response> {
    const scopeKey =
      'agent' in scope
        ? `${scope.agent.namespace}/${scope.agent.name}`
        : 'team' in scope
          ? `team:${scope.team.namespace}/${scope.team.name}`
          : '*'
    const id = request.headers.get('mcp-session-id')
    if (id !== null) {
      const held = this.#sessions.get(id)
      if (held === undefined || held.session.scope !== scopeKey || held.session.key !== principal?.id) {
        return jsonRpcError(
          404,
          SESSION_NOT_FOUND,
          `MCP session ${JSON.stringify(id.slice(0, 64))} is not known here (it ended, or another endpoint made it): start a new session with initialize`,
        )
      }
      held.session.lastUsed = Date.now()
      held.session.principal = principal
      return held.transport.handleRequest(request, request.method === 'POST' ? { parsedBody: body } : {})
    }
    if (request.method !== 'POST' || !isInitialize(body)) {
      return jsonRpcError(
        400,
        INVALID_REQUEST,
        'no Mcp-Session-Id header: the first request of a session is a POST of initialize',
      )
    }
    if (!('all' in scope)) {
      const [kind, ref] =
        'agent' in scope ? (['agent', scope.agent] as const) : (['team', scope.team] as const)
      if (principal !== undefined && !principal.allowsTarget(kind === 'agent' ? 'Agent' : 'Team', ref)) {
        // Whether or not it exists: a scope does not tell what lies outside it.
        return jsonRpcError(
          403,
          FORBIDDEN,
          notAllowedMessage(principal, `${kind}/${ref.namespace}/${ref.name}`),
        )
      }
      const found =
        kind === 'agent' ? this.#deps.catalog.get('Agent', ref) : this.#deps.catalog.get('Team', ref)
      if (found === undefined) {
        return jsonRpcError(
          404,
          INVALID_PARAMS,
          `there is no ${kind} ${ref.namespace}/${ref.name}; POST /mcp lists every agent and team`,
        )
      }
    }
    // Full: refused, never making room by ending another host's session (and the calls running in it).
    if (this.#closed || this.#sessions.size + this.#opening >= this.#options.maxSessions) {
      return jsonRpcError(
        503,
        SERVER_BUSY,
        this.#closed
          ? 'this gateway is shutting down'
          : `this gateway holds as many MCP sessions as it may (${String(this.#options.maxSessions)}); retry later, and end sessions you no longer use (DELETE with their Mcp-Session-Id)`,
        { 'retry-after': '5' },
      )
    }
    const session: Session = {
      scope: scopeKey,
      key: principal?.id,
      principal,
      lastUsed: Date.now(),
      running: 0,
    }
    this.#opening++
    try {
      const sdk = await loadSdk()
      // Closed while the SDK loaded: no session is opened that close() would not end.
      if (this.#isClosed())
        return jsonRpcError(503, SERVER_BUSY, 'this gateway is shutting down', { 'retry-after': '5' })
      return await this.#open(sdk, scope, session, request, body)
    } finally {
      this.#opening--
    }
  }

  /** A new session's server and transport, connected, answering its initialize. */
  async #open(
    sdk: Sdk,
    scope: McpScope,
    session: Session,
    request: Request,
    body: unknown,
  ): Promise<Response> {
    const server = this.#server(sdk, scope, session)
    const transport: Transport = new sdk.Transport({
      sessionIdGenerator: () => crypto.randomUUID(),
      onsessioninitialized: (sessionId) => {
        if (this.#closed) void transport.close()
        else this.#sessions.set(sessionId, { session, transport })
      },
      onsessionclosed: (sessionId) => {
        this.#sessions.delete(sessionId)
      },
      maxRequestBodySize: this.#options.maxBodyBytes,
    })
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.#sessions.delete(transport.sessionId)
    }
    await server.connect(transport)
    return transport.handleRequest(request, { parsedBody: body })
  }

  /** Read through a call: TypeScript narrows `#closed` after one check and would not re-read it after an await. */
  #isClosed(): boolean {
    return this.#closed
  }

  /** How many sessions this replica holds (for tests and metrics). */
  get sessions(): number {
    return this.#sessions.size
  }

  /**
   * Ends every session's standalone GET stream (server notifications), which never ends by itself: a gateway
   * that drains would otherwise wait its whole grace for it. Tool calls in flight go on; a client reconnects
   * its stream to another replica.
   */
  endNotificationStreams(): void {
    for (const { transport } of this.#sessions.values()) transport.closeStandaloneSSEStream()
  }

  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#sweeper)
    const all = [...this.#sessions.values()]
    this.#sessions.clear()
    await Promise.allSettled(all.map((s) => s.transport.close()))
  }

  // The low-level Server, not McpServer: the tools are the catalog's agents, listed afresh on each
  // tools/list with JSON Schemas, where McpServer wants tools registered up front with zod schemas.
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  #server(sdk: Sdk, scope: McpScope, session: Session): Server {
    const server = new sdk.Server(SERVER_INFO, {
      capabilities: { tools: { listChanged: false } },
      instructions:
        'Each tool is an agent or a team of agents of ark: send it a message, and it answers after running its own tools and models.',
    })
    server.setRequestHandler(sdk.ListToolsRequestSchema, () => ({
      tools: this.#targets(scope, session.principal).map(toolOf),
    }))
    server.setRequestHandler(sdk.CallToolRequestSchema, async (request, extra) => {
      const agent = this.#targets(scope, session.principal, true).find(
        (a) => nameOf(a) === request.params.name,
      )
      if (agent === undefined) {
        throw new sdk.McpError(
          INVALID_PARAMS,
          `there is no tool ${JSON.stringify(request.params.name.slice(0, 200))} here; tools/list names the agents this endpoint serves`,
        )
      }
      const progressToken = request.params._meta?.progressToken
      session.running++
      try {
        return await this.#call(
          agent,
          request.params.arguments ?? {},
          session.principal,
          extra.signal,
          (message, progress) =>
            progressToken === undefined
              ? Promise.resolve()
              : extra.sendNotification({
                  method: 'notifications/progress',
                  params: { progressToken, progress, message },
                }),
        )
      } finally {
        session.running--
        session.lastUsed = Date.now()
      }
    })
    return server
  }

  /**
   * The agents and teams the scope serves and the caller's key may call: Available ones for tools/list; with
   * `any`, unavailable ones too (a call says why).
   */
  #targets(scope: McpScope, who: Principal | undefined, any = false): Target[] {
    const { catalog } = this.#deps
    const candidates: Target[] =
      'agent' in scope
        ? [catalog.get('Agent', scope.agent)].filter((a) => a !== undefined)
        : 'team' in scope
          ? [catalog.get('Team', scope.team)].filter((t) => t !== undefined)
          : [...catalog.list('Agent'), ...catalog.list('Team')]
    const allowed =
      who === undefined || who.unrestricted
        ? candidates
        : candidates.filter((t) => who.allowsTarget(t.kind, t.ref))
    if (any) return allowed
    return allowed.filter((a) => catalog.available(a.key)?.status === 'True')
  }

  async #call(
    agent: Target,
    args: Record<string, unknown>,
    who: Principal | undefined,
    signal: AbortSignal,
    progress: (message: string, step: number) => Promise<void>,
  ): Promise<CallToolResult> {
    const input = inputOf(args, agent)
    if ('error' in input) return errorResult(input.error)
    const { admission } = this.#deps
    const name = `${agent.kind === 'Team' ? 'team' : 'agent'}/${agent.ref.namespace}/${agent.ref.name}`
    const checked = admission.check(name, input.parameters, who)
    if ('refusal' in checked) return errorResult(refusalText(checked.refusal))
    let step = 0
    const onEvent = (event: AgentEvent) => {
      const message = progressMessage(event)
      if (message === undefined) return undefined
      step++
      // A notification the host cannot take (it went away) is not the run's failure.
      void progress(message, step).catch(() => {})
      return undefined
    }
    const admitted = await admission.submit(checked, {
      via: 'mcp',
      messages: [{ role: 'user', content: input.message }],
      parameters: input.parameters,
      stream: false,
      signal,
      onEvent,
      ...(input.conversation === undefined ? {} : { conversation: { id: input.conversation } }),
    })
    if ('refusal' in admitted) return errorResult(refusalText(admitted.refusal))
    const result = await admitted.run.result
    if (succeeded(result)) return { content: [{ type: 'text', text: result.content ?? '' }] }
    const failure = failureOf(result)
    return errorResult(`${name} did not answer: ${failure.code}: ${failure.message}`)
  }

  #sweep(): void {
    const before = Date.now() - this.#options.sessionIdleMs
    for (const [id, { session, transport }] of this.#sessions) {
      if (session.running > 0 || session.lastUsed >= before) continue
      this.#sessions.delete(id)
      void transport.close()
    }
  }
}

/** The MCP name of an agent: its name in namespace default, `<namespace>__<name>` elsewhere. */
export function toolName(ref: ObjectRef): string {
  return ref.namespace === 'default' ? ref.name : `${ref.namespace}__${ref.name}`
}

/** The MCP name of an agent (toolName) or a team (`team__<namespace>__<name>`). */
function nameOf(target: Target): string {
  return target.kind === 'Team' ? `team__${target.ref.namespace}__${target.ref.name}` : toolName(target.ref)
}

function toolOf(agent: Target): Tool {
  const parameters = agent.kind === 'Team' ? [] : queryParametersOf(agent)
  const properties: Record<string, object> = {
    message: { type: 'string', description: 'What to ask the agent.' },
    conversation_id: {
      type: 'string',
      description:
        'The conversation this message continues: with a memory, the agent remembers what was said in it before.',
    },
  }
  if (parameters.length > 0) {
    properties.parameters = {
      type: 'object',
      description: "Values for the agent's prompt parameters.",
      properties: Object.fromEntries(parameters.map((p) => [p, { type: 'string' }])),
      required: parameters,
      additionalProperties: false,
    }
  }
  return {
    name: nameOf(agent),
    title: agent.ref.name,
    description:
      agent.spec.description ??
      (agent.kind === 'Team'
        ? `The ark team ${agent.ref.namespace}/${agent.ref.name}: send it a message; its members answer it together.`
        : `The ark agent ${agent.ref.namespace}/${agent.ref.name}: send it a message; it answers with text.`),
    inputSchema: {
      type: 'object',
      properties,
      required: parameters.length > 0 ? ['message', 'parameters'] : ['message'],
      additionalProperties: false,
    },
  }
}

type Input =
  | {
      readonly message: string
      readonly parameters: Readonly<Record<string, string>>
      readonly conversation?: string
    }
  | { readonly error: string }

/** The call's arguments, checked: a model that sent the wrong shape is told what to send. */
function inputOf(args: Record<string, unknown>, agent: Target): Input {
  const { message, parameters, conversation_id: conversation, ...rest } = args
  const extra = Object.keys(rest)
  if (extra.length > 0)
    return {
      error: `unknown argument ${JSON.stringify(extra[0]?.slice(0, 100))}: send { message, parameters?, conversation_id? }`,
    }
  if (conversation !== undefined && typeof conversation !== 'string')
    return { error: 'arguments.conversation_id must be a string: the conversation this message continues' }
  if (typeof message !== 'string' || message.trim() === '')
    return { error: 'arguments.message must be a non-empty string: what to ask the agent' }
  // No prototype: a parameter named `constructor` or `toString` is missing unless it was sent.
  const values: Record<string, string> = Object.create(null) as Record<string, string>
  if (parameters !== undefined) {
    if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters))
      return { error: 'arguments.parameters must be an object of strings' }
    for (const [k, v] of Object.entries(parameters as Record<string, unknown>)) {
      if (typeof v !== 'string') return { error: `arguments.parameters.${k.slice(0, 100)} must be a string` }
      values[k] = v
    }
  }
  const missing = (agent.kind === 'Team' ? [] : queryParametersOf(agent)).filter(
    (p) => values[p] === undefined,
  )
  if (missing.length > 0)
    return { error: `arguments.parameters.${missing[0] ?? ''} is required by ${agent.ref.name}` }
  return { message, parameters: values, ...(conversation === undefined ? {} : { conversation }) }
}

function progressMessage(event: AgentEvent): string | undefined {
  switch (event.type) {
    case 'llm.start':
      return `model call ${String(event.iteration)}`
    case 'tool.start':
      return `calling tool ${event.tool}`
    case 'team.turn':
      return `${event.member} takes turn ${String(event.turn)}`
    default:
      return undefined
  }
}

function refusalText(refusal: Refusal): string {
  return `${refusal.code}: ${refusal.message}`
}

function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true }
}

function isInitialize(body: unknown): boolean {
  const first = Array.isArray(body) ? (body as unknown[])[0] : body
  return (
    typeof first === 'object' && first !== null && (first as { method?: unknown }).method === 'initialize'
  )
}

/** A JSON-RPC error as an HTTP response, for what is refused before a session's transport sees it. */
export function jsonRpcError(
  status: number,
  code: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}
