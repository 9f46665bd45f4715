/**
 * Tools that run in the Wasm sandbox: custom `wasm` Tools (any Extism plugin) and webhooks (ARK's `http` Tools
 * and ArkAgent inline tools), which go through the built-in `http` plugin so that a webhook meets the same host
 * policy, time and size limits as any other plugin. Everything a call needs that does not depend on its
 * arguments (resolved Secrets, parsed templates, the granted host) is prepared once per agent.
 */
import type { HttpToolSpec, JsonSchema, NamedValue, WasmToolSpec } from '../../../controller/api/index.ts'
import { base64Bytes } from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { PluginSpec, Sandbox, SandboxedPlugin } from '../../../sandbox/index.ts'
import { ModuleRejected, SandboxError } from '../../../sandbox/index.ts'
import type { ToolDefinition } from '../messages.ts'
import { compileJsonSchema } from '../schema.ts'
import { parseTemplate } from '../template.ts'
import type { PreparedTool, ToolResult } from './tool.ts'
import { injectInto, tracer } from '../../trace/tracing.ts'

/** The agent cannot use the tool as declared; prepare.ts turns it into a PrepareError. */
export class ToolSpecError extends Error {
  override readonly name = 'ToolSpecError'
}

/** Arguments when a Tool declares no inputSchema: any object. */
const ANY_OBJECT: JsonSchema = { type: 'object' }
/** Webhooks answer within this unless the Tool says otherwise (ARK's `timeout`). */
const WEBHOOK_TIMEOUT_MS = 30_000

interface Described {
  readonly name: string
  readonly description: string
  readonly inputSchema: JsonSchema | undefined
}

/** A `wasm` Tool: the call's arguments, as JSON, are the plugin's input; its output is the result. */
export function wasmTool(
  tool: Described,
  spec: WasmToolSpec,
  namespace: string,
  catalog: Catalog,
  sandbox: Sandbox,
): PreparedTool {
  const plugin = lazyPlugin(sandbox, wasmPluginSpec(spec, namespace, catalog))
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  return sandboxedTool(tool, async (args, signal) => {
    const output = await (await plugin()).call(encoder.encode(JSON.stringify(args)), { signal })
    return { content: decoder.decode(output) }
  })
}

/** The sandbox's view of a `wasm` Tool, with its values (config, ConfigMap bytes) read from the catalog. */
export function wasmPluginSpec(spec: WasmToolSpec, namespace: string, catalog: Catalog): PluginSpec {
  const m = spec.module
  let source: PluginSpec['source']
  if ('configMapKeyRef' in m) {
    const ref = m.configMapKeyRef
    const cm = catalog.get('ConfigMap', { namespace, name: ref.name })
    const b64 = cm?.spec.binaryData[ref.key]
    if (b64 === undefined) {
      throw new ToolSpecError(
        `module: ConfigMap ${namespace}/${ref.name} has no binaryData key "${ref.key}"${cm === undefined ? ' (the ConfigMap does not exist)' : ''}`,
      )
    }
    source = { bytes: base64Bytes(b64), name: `ConfigMap ${namespace}/${ref.name} key ${ref.key}` }
  } else source = m
  const config: Record<string, string> = {}
  for (const v of spec.config) config[v.name] = resolve(v, namespace, catalog, 'config')
  const limits = spec.limits
  return {
    source,
    function: spec.function,
    config,
    allowedHosts: spec.allowedHosts,
    limits: {
      ...(limits.timeoutMs === undefined ? {} : { timeoutMs: limits.timeoutMs }),
      ...(limits.memoryMiB === undefined ? {} : { memoryMiB: limits.memoryMiB }),
      ...(limits.maxInputBytes === undefined ? {} : { maxInputBytes: limits.maxInputBytes }),
      ...(limits.maxOutputBytes === undefined ? {} : { maxOutputBytes: limits.maxOutputBytes }),
    },
  }
}

/**
 * A webhook: the URL template's `{{param}}` placeholders are filled from the call's arguments (URL-encoded);
 * the body is the body template, or the arguments as JSON; arguments the URL does not use go in the query
 * string of methods without a body. The answer's body is the result; a status of 400 or more is an error.
 * Only the URL's own host is granted, so the model cannot point the tool anywhere else.
 */
export function webhookTool(
  tool: Described,
  spec: HttpToolSpec,
  namespace: string,
  catalog: Catalog,
  sandbox: Sandbox,
): PreparedTool {
  const url = parseTemplate(spec.url, WEBHOOK_TEMPLATE)
  const origin = staticOrigin(spec.url, url)
  const headers: Record<string, string> = {}
  for (const h of spec.headers) headers[h.name.toLowerCase()] = resolve(h, namespace, catalog, 'header')
  const fixed: Record<string, string> = {}
  for (const p of spec.bodyParameters) fixed[p.name] = resolve(p, namespace, catalog, 'body parameter')
  const body = spec.body === undefined ? undefined : parseTemplate(spec.body, WEBHOOK_TEMPLATE)
  // How a value is written into the body template: escaped inside a JSON template, URL-encoded in a form,
  // as it is in anything else (text).
  const bodyEncoding: (value: string) => string =
    spec.body !== undefined && /^\s*[{[]/.test(spec.body)
      ? jsonStringContent
      : /x-www-form-urlencoded/i.test(headers['content-type'] ?? '')
        ? encodeURIComponent
        : (v) => v
  const hasBody = spec.method !== 'GET' && spec.method !== 'DELETE'
  if (hasBody && body === undefined) headers['content-type'] ??= 'application/json'
  const plugin = lazyPlugin(sandbox, webhookPluginSpec(spec, origin))
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  return sandboxedTool(tool, async (args, signal) => {
    const values: Record<string, string> = {}
    for (const [k, v] of Object.entries(args)) values[k] = typeof v === 'string' ? v : JSON.stringify(v)
    // The Tool's fixed values win over anything the model sends.
    Object.assign(values, fixed)
    for (const name of url.parameters) {
      // URL-encoding leaves dots alone, and `..` in a path climbs out of the endpoint the Tool names.
      const v = values[name]
      if (v === '.' || v === '..') {
        return {
          content: `error: argument ${name} may not be "${v}": it would change the URL's path`,
          isError: true,
        }
      }
    }
    const target = new URL(url.render(values, encodeURIComponent))
    if (!target.pathname.startsWith(origin.fixedPath)) {
      return {
        content: `error: the arguments changed the webhook's path outside ${origin.fixedPath}`,
        isError: true,
      }
    }
    if (target.origin !== origin.origin) {
      return { content: `error: the arguments changed the webhook's host to ${target.host}`, isError: true }
    }
    if (!hasBody) {
      for (const [k, v] of Object.entries(values)) {
        if (!url.parameters.includes(k) && !(k in fixed)) target.searchParams.append(k, v)
      }
    }
    const payload = !hasBody
      ? ''
      : body === undefined
        ? JSON.stringify({ ...args, ...fixed })
        : body.render(values, bodyEncoding)
    const request = JSON.stringify({ url: target.href, method: spec.method, headers: traced(headers) })
    const output = await (await plugin()).call(encoder.encode(`${request}\n${payload}`), { signal })
    const text = decoder.decode(output)
    const newline = text.indexOf('\n')
    const status = Number(text.slice(0, newline))
    const answer = text.slice(newline + 1)
    if (status >= 400) return { content: `error: HTTP ${String(status)}: ${answer}`, isError: true }
    return { content: answer }
  })
}

/** `headers` with the tool call's `traceparent` added when tracing is on (a copy: they are the Tool's own). */
function traced(headers: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (tracer() === undefined) return headers
  const out = { ...headers }
  injectInto(out)
  return out
}

/** The built-in webhook plugin, granted only the URL's own host; throws ToolSpecError for a bad template. */
export function webhookPluginSpec(spec: HttpToolSpec, origin = staticOrigin(spec.url)): PluginSpec {
  return {
    source: { builtin: 'http' },
    function: 'call',
    // Host and port, default port included: a redirect to another port of the same host is not granted.
    allowedHosts: [origin.grant],
    limits: {
      timeoutMs: spec.timeoutSeconds === undefined ? WEBHOOK_TIMEOUT_MS : spec.timeoutSeconds * 1000,
    },
  }
}

function sandboxedTool(
  tool: Described,
  run: (args: Readonly<Record<string, unknown>>, signal: AbortSignal) => Promise<ToolResult>,
): PreparedTool {
  const schema = tool.inputSchema ?? ANY_OBJECT
  const definition: ToolDefinition = {
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: schema },
  }
  return {
    name: tool.name,
    definition,
    validator: compileJsonSchema(schema),
    async execute(args, context) {
      try {
        return await run(args, context.signal)
      } catch (err) {
        if (err instanceof SandboxError) {
          return { content: `error: ${tool.name}: ${err.message}`, isError: true, outcome: err.kind }
        }
        if (err instanceof ModuleRejected) {
          return { content: `error: ${tool.name} is unavailable: ${err.message}`, isError: true }
        }
        throw err
      }
    },
  }
}

/** Loads on first call and keeps the plugin; a load that failed is tried again by the next call. */
function lazyPlugin(sandbox: Sandbox, spec: PluginSpec): () => Promise<SandboxedPlugin> {
  let loading: Promise<SandboxedPlugin> | undefined
  return () => {
    if (loading === undefined) {
      loading = sandbox.load(spec)
      loading.catch(() => {
        loading = undefined
      })
    }
    return loading
  }
}

/** Webhook templates: `{{name}}` or `{{.name}}`, a value the call lacks renders as empty. */
const WEBHOOK_TEMPLATE = { bareNames: true, missingAsEmpty: true } as const

interface StaticOrigin {
  readonly origin: string
  /** The host policy pattern: `host:port`. */
  readonly grant: string
  /** The path before the first placeholder: the rendered URL must stay under it. */
  readonly fixedPath: string
}

/** The origin of a URL template, which must not depend on the arguments. */
function staticOrigin(template: string, url = parseTemplate(template, WEBHOOK_TEMPLATE)): StaticOrigin {
  // Every placeholder filled with the same text, whatever the call's values.
  const filled = (text: string): string => url.render({}, () => text)
  let a: URL
  let b: URL
  try {
    a = new URL(filled('x'))
    b = new URL(filled('y'))
  } catch {
    throw new ToolSpecError(`url ${JSON.stringify(template)} is not a URL`)
  }
  if (a.origin !== b.origin) {
    throw new ToolSpecError(
      `url ${JSON.stringify(template)}: placeholders may fill the path and query, not the scheme, host or port`,
    )
  }
  const port = a.port === '' ? (a.protocol === 'https:' ? '443' : '80') : a.port
  // The template up to its first placeholder (NUL cannot appear in a URL).
  const marked = filled('\u0000')
  const literal = marked.includes('\u0000') ? marked.slice(0, marked.indexOf('\u0000')) : template
  let fixedPath = '/'
  try {
    const prefix = new URL(literal).pathname
    // Placeholders only in the query cannot move the path; one inside a segment may change that segment.
    fixedPath =
      literal.includes('?') || prefix.endsWith('/') ? prefix : prefix.slice(0, prefix.lastIndexOf('/') + 1)
  } catch {
    // The template's first placeholder sits in the host part, which the origin check above already refused.
  }
  return { origin: a.origin, grant: `${a.hostname}:${port}`, fixedPath }
}

/** A value placed inside a JSON string literal of a body template. */
function jsonStringContent(value: string): string {
  return JSON.stringify(value).slice(1, -1)
}

function resolve(v: NamedValue, namespace: string, catalog: Catalog, what: string): string {
  const r = catalog.resolveValue(namespace, v.source)
  if (!r.ok) throw new ToolSpecError(`${what} ${v.name}: ${r.message}`)
  return r.value ?? ''
}
