/**
 * Preparing an agent: everything the tool loop needs that does not change from one request to the next
 * (tool definitions, compiled argument and output validators, the parsed prompt template, the rendered prompt
 * when it has no per-request parameters) is built once and reused until the agent or something it depends on
 * changes.
 */
import type { AgentTool, PromptSource, ResourceOf, SettingsSpec } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { ChatMessage } from './messages.ts'
import type { LoopAgent } from './loop.ts'
import type { JsonValidator } from './schema.ts'
import { compileJsonSchema } from './schema.ts'
import type { Template } from './template.ts'
import { parseTemplate } from './template.ts'
import type { Sandbox } from '../../sandbox/index.ts'
import { delegationRoles } from './subtasks.ts'
import type { ServerTools, ToolEnvironment, ToolKinds, ToolSet } from './tools/kinds.ts'
import { TOOL_KINDS, fromBuiltin, makeTool, modelName } from './tools/kinds.ts'
import type { BuiltinTool, PreparedTool } from './tools/tool.ts'
import { PrepareError } from './tools/tool.ts'

export { PrepareError }

export interface PreparedAgent extends LoopAgent {
  readonly resource: ResourceOf<'Agent'>
  /** Parameters a request must supply (queryParameterRef), by the name the request uses. */
  readonly queryParameters: readonly string[]
  readonly timeoutMs: number
  /** The system message for these request parameters; undefined when the agent has no prompt. */
  systemMessage(parameters: Readonly<Record<string, string>>): ChatMessage | undefined
  /** Lets go of what its tools hold (connections to tool servers); called once the agent is dropped. */
  dispose(): void
}

export interface PrepareOptions {
  readonly catalog: Catalog
  readonly builtins: Readonly<Record<string, BuiltinTool>>
  readonly maxIterations: number
  readonly timeoutMs: number
  /** How clients address this agent: `agent/<name>` in the default namespace, else `agent/<ns>/<name>`. */
  readonly id: string
  /** Runs webhook and `wasm` tools; without it, agents that have them cannot run. */
  readonly sandbox?: Sandbox
  /** The kinds of tool this runtime runs, by Tool type (default TOOL_KINDS). */
  readonly toolKinds?: ToolKinds
  /** The tools of ArkAgent `mcpServers` entries; without it, agents that have them cannot run. */
  readonly serverTools?: ServerTools
  /** Ends a preparation that takes too long (a tool server that does not answer). */
  readonly signal?: AbortSignal
  /** Called when what a tool was made from changes outside the catalog (see ToolEnvironment.stale). */
  readonly stale?: () => void
}

/**
 * Parameters a request must supply (queryParameterRef), by the name the request uses. Read off the spec, so
 * that admission can check a request without preparing the agent.
 */
export function queryParametersOf(agent: ResourceOf<'Agent'>): string[] {
  const names: string[] = []
  for (const p of agent.spec.parameters)
    if ('queryParameterRef' in p.source) names.push(p.source.queryParameterRef.name)
  return names
}

export async function prepareAgent(
  agent: ResourceOf<'Agent'>,
  options: PrepareOptions,
): Promise<PreparedAgent> {
  const { catalog } = options
  const ns = agent.ref.namespace
  const env: ToolEnvironment = {
    catalog,
    namespace: ns,
    builtins: options.builtins,
    ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox }),
    agent: agent.ref,
    signal: options.signal ?? new AbortController().signal,
    stale: options.stale ?? (() => {}),
  }
  const kinds = options.toolKinds ?? TOOL_KINDS
  const tools = new Map<string, PreparedTool>()
  const held: ToolSet[] = []
  const disposeAll = () => {
    for (const set of held) set.dispose()
  }
  // All at once: each MCP server an ArkAgent names may wait its connect time, and waits one after another
  // would add up past the preparation's own bound. In the list's order after that.
  const sets = await Promise.allSettled(
    agent.spec.tools.map((entry) => prepareTools(entry, env, kinds, options.serverTools)),
  )
  for (const set of sets) if (set.status === 'fulfilled') held.push(set.value)
  try {
    for (const set of sets) {
      if (set.status === 'rejected') throw set.reason
    }
    for (const set of held) {
      for (const tool of set.tools) {
        if (tools.has(tool.name)) throw new PrepareError(`two tools are named ${tool.name}`)
        tools.set(tool.name, tool)
      }
    }
  } catch (err) {
    // What the tools made so far holds connections of its own: a refused agent keeps none.
    disposeAll()
    throw err
  }
  // Seed 003: an agent whose team lets it hand work on (canDelegate) has `delegate`, listed or not. The
  // runtime drops this preparation when a Team that names the agent changes.
  const delegate = options.builtins.delegate
  if (delegate !== undefined && !tools.has('delegate')) {
    const roles = [...delegationRoles(catalog, agent.ref).keys()].sort()
    if (roles.length > 0) {
      const description = `${delegate.description} You may delegate to: ${roles.join(', ')}.`
      tools.set('delegate', fromBuiltin('delegate', delegate, description))
    }
  }
  const toolDefinitions = [...tools.values()].map((t) => t.definition)
  const outputSchema = agent.spec.outputSchema
  const outputValidator: JsonValidator | undefined =
    outputSchema === undefined ? undefined : compileJsonSchema(outputSchema)

  // ArkSettings (configRef): read once per version of the agent; a change to them drops this preparation
  // (the agent depends on them: controller/api/references.ts).
  const settings = settingsOf(agent, catalog)
  const frame = frameOf(settings)
  const defaults =
    settings?.temperature === undefined ? undefined : { temperature: Number(settings.temperature) }
  const json = settings?.outputFormat !== undefined && JSON_FORMATS.has(formatOf(settings.outputFormat))

  const queryParameters = queryParametersOf(agent)
  const staticValues: Record<string, string> = {}
  let allStatic = true
  for (const p of agent.spec.parameters) {
    if ('value' in p.source) staticValues[p.name] = p.source.value
    else allStatic = false
  }

  // The prompt may live in a ConfigMap that changes under us: it is read per request (two Map lookups),
  // parsed once per distinct text, and rendered once per distinct parameter values.
  let lastText: string | undefined
  let template: Template | undefined
  const rendered = new Map<string, ChatMessage>()
  const promptText = (): string | undefined => readPrompt(agent.spec.prompt, ns, catalog)
  // Only the agent's own prompt is a template: the settings' fragments go around what it renders, as written.
  const framed: ChatMessage | undefined =
    frame === undefined ? undefined : { role: 'system', content: frame.wrap(undefined) }
  const systemFor = (values: Readonly<Record<string, string | undefined>>): ChatMessage | undefined => {
    const text = promptText()
    if (text === undefined) return framed
    if (text !== lastText) {
      lastText = text
      template = parseTemplate(text)
      rendered.clear()
    }
    const t = template as Template
    if (t.parameters.length === 0) {
      let m = rendered.get('')
      if (m === undefined) rendered.set('', (m = { role: 'system', content: frame?.wrap(text) ?? text }))
      return m
    }
    const key = t.parameters.map((n) => values[n] ?? '').join('\u0000')
    let m = rendered.get(key)
    if (m === undefined) {
      // Bounded: per-request parameter values could otherwise grow this without limit.
      if (rendered.size >= 256) rendered.clear()
      const content = t.render(values)
      rendered.set(key, (m = { role: 'system', content: frame?.wrap(content) ?? content }))
    }
    return m
  }

  return {
    id: options.id,
    resource: agent,
    tools,
    toolDefinitions,
    ...(outputSchema === undefined ? {} : { outputSchema }),
    ...(outputValidator === undefined ? {} : { outputValidator }),
    maxIterations: options.maxIterations,
    ...(agent.spec.limits.maxTokensPerCall === undefined
      ? {}
      : { maxTokensPerCall: agent.spec.limits.maxTokensPerCall }),
    ...(defaults === undefined ? {} : { defaults }),
    ...(json ? { json } : {}),
    timeoutMs:
      agent.spec.limits.timeoutSeconds === undefined
        ? options.timeoutMs
        : agent.spec.limits.timeoutSeconds * 1000,
    queryParameters,
    dispose: disposeAll,
    systemMessage(parameters) {
      if (allStatic) return systemFor(staticValues)
      const values: Record<string, string | undefined> = { ...staticValues }
      for (const p of agent.spec.parameters) {
        const s = p.source
        if ('value' in s) continue
        if ('queryParameterRef' in s) values[p.name] = parameters[s.queryParameterRef.name]
        else {
          const v = catalog.resolveValue(ns, s)
          if (!v.ok) throw new PrepareError(`parameter ${p.name}: ${v.message}`)
          values[p.name] = v.value
        }
      }
      return systemFor(values)
    },
  }
}

/** The Settings the agent references (ArkAgent configRef), or undefined when it names none. */
function settingsOf(agent: ResourceOf<'Agent'>, catalog: Catalog): SettingsSpec | undefined {
  const ref = agent.spec.settings
  if (ref === undefined) return undefined
  const settings = catalog.get('Settings', ref)
  if (settings === undefined)
    throw new PrepareError(`settings (configRef): Settings ${ref.namespace}/${ref.name} not found`)
  return settings.spec
}

/** outputFormat values that ask for one JSON object. */
const JSON_FORMATS = new Set(['structured-json', 'json'])

const ONE_JSON_OBJECT =
  'Answer with one JSON object and nothing else: no text before or after it, no Markdown code fences.'

/** What each outputFormat asks of the model, in the prompt; formats not listed ask nothing. */
const FORMAT_INSTRUCTIONS: ReadonlyMap<string, string> = new Map([
  ['structured-json', ONE_JSON_OBJECT],
  ['json', ONE_JSON_OBJECT],
  ['markdown', 'Format your answer in Markdown.'],
  ['plain', 'Answer in plain text, without Markdown formatting.'],
])

function formatOf(outputFormat: string): string {
  return outputFormat.trim().toLowerCase()
}

/** The Settings' parts of the system prompt, around the agent's own, as ark-operator joins them. */
interface Frame {
  /** The whole system prompt for `prompt` (the agent's, rendered; undefined when it has none). */
  wrap(prompt: string | undefined): string
}

/**
 * persona, the prompt, the other fragments by name, what the outputFormat asks, and outputRules last, each
 * part separated by a blank line (ark-operator's `persona + "\n\n" + prompt + "\n\n" + outputRules`); undefined
 * when the Settings add nothing to the prompt.
 */
function frameOf(settings: SettingsSpec | undefined): Frame | undefined {
  if (settings === undefined) return undefined
  const instruction =
    settings.outputFormat === undefined ? undefined : FORMAT_INSTRUCTIONS.get(formatOf(settings.outputFormat))
  const before = settings.persona === undefined ? [] : [settings.persona]
  const after = [
    ...(settings.fragments ?? []).map((f) => f.text),
    ...(instruction === undefined ? [] : [instruction]),
    ...(settings.outputRules === undefined ? [] : [settings.outputRules]),
  ]
  if (before.length === 0 && after.length === 0) return undefined
  return {
    wrap: (prompt) =>
      [...before, ...(prompt === undefined ? [] : [prompt]), ...after]
        .filter((part) => part !== '')
        .join('\n\n'),
  }
}

function readPrompt(
  prompt: PromptSource | undefined,
  namespace: string,
  catalog: Catalog,
): string | undefined {
  if (prompt === undefined) return undefined
  if ('inline' in prompt) return prompt.inline
  const v = catalog.resolveValue(namespace, prompt)
  if (!v.ok) throw new PrepareError(`prompt: ${v.message}`)
  return v.value
}

/** The tools one entry of the agent's list gives it (one, but every tool of an inline MCP server). */
async function prepareTools(
  entry: AgentTool,
  env: ToolEnvironment,
  kinds: ToolKinds,
  serverTools: ServerTools | undefined,
): Promise<ToolSet> {
  if (entry.kind === 'mcpServer') {
    if (serverTools === undefined)
      throw new PrepareError(`mcpServers ${entry.server.name} needs the MCP client, which this runtime lacks`)
    return serverTools(entry.server, env)
  }
  const tool = await prepareTool(entry, env, kinds)
  return { tools: [tool], dispose: () => tool.dispose?.() }
}

/** The tool one entry of the agent's list names; the Tool's type picks its kind (tools/kinds.ts). */
async function prepareTool(
  entry: Exclude<AgentTool, { kind: 'mcpServer' }>,
  env: ToolEnvironment,
  kinds: ToolKinds,
): Promise<PreparedTool> {
  const { catalog, namespace: ns } = env
  switch (entry.kind) {
    case 'builtin': {
      const builtin = env.builtins[entry.name]
      if (builtin === undefined) throw new PrepareError(`there is no built-in tool "${entry.name}"`)
      return fromBuiltin(entry.name, builtin, entry.description)
    }
    case 'ref': {
      const tool = catalog.get('Tool', entry.ref)
      if (tool === undefined) throw new PrepareError(`Tool ${ns}/${entry.ref.name} not found`)
      const name = modelName(entry.as ?? entry.ref.name)
      const fixed: Record<string, string> = {}
      for (const f of entry.fixed) {
        const v = catalog.resolveValue(ns, f.source)
        if (!v.ok) throw new PrepareError(`tool ${name}: ${f.name}: ${v.message}`)
        if (v.value !== undefined) fixed[f.name] = v.value
      }
      const face = {
        name,
        description: entry.description ?? tool.spec.description,
        inputSchema: tool.spec.inputSchema,
      }
      return withFixed(await makeTool(kinds, tool.spec, face, env), fixed)
    }
    case 'inline': {
      const spec = entry.tool
      if (spec.type !== 'http') throw new PrepareError(`inline tool ${entry.name} must be a webhook`)
      const face = {
        name: modelName(entry.name),
        description: spec.description,
        inputSchema: spec.inputSchema,
      }
      return makeTool(kinds, spec, face, env)
    }
  }
}
/** Arguments the agent fixes (ARK `partial`) are hidden from the model and added to every call. */
function withFixed(tool: PreparedTool, fixed: Readonly<Record<string, string>>): PreparedTool {
  const names = Object.keys(fixed)
  if (names.length === 0) return tool
  const params = tool.definition.function.parameters
  const properties = Object.fromEntries(
    Object.entries((params.properties ?? {}) as Record<string, unknown>).filter(([k]) => !names.includes(k)),
  )
  const required = Array.isArray(params.required)
    ? (params.required as string[]).filter((r) => !names.includes(r))
    : undefined
  const visible = { ...params, properties, ...(required === undefined ? {} : { required }) }
  return {
    ...tool,
    definition: { type: 'function', function: { ...tool.definition.function, parameters: visible } },
    // The model sends only the visible arguments; the fixed ones are added after validation.
    validator: compileJsonSchema(visible),
    execute: (args, context) => tool.execute({ ...args, ...fixed }, context),
  }
}
