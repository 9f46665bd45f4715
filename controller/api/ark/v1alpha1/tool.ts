import { conditionsAs, headers, parameters, ref } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { ToolImpl, ToolSpec, WasmModuleSource } from '../../resources.ts'
import { TOOL_TYPES } from '../../resources.ts'
import {
  Bool,
  Conditions,
  Enum,
  FreeObject,
  Header,
  Int,
  KeySelector,
  List,
  Name,
  NamespacedRef,
  Obj,
  Opt,
  Parameter,
  Str,
} from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

const HttpSpec = Obj(
  {
    url: Str({
      minLength: 1,
      pattern: '^https?://',
      description: 'URL template; `{{name}}` is replaced by the call argument `name`.',
    }),
    method: Opt(Enum(['GET', 'POST', 'PUT', 'DELETE', 'PATCH'], { default: 'GET' })),
    headers: Opt(List(Header)),
    timeout: Opt(Str({ pattern: '^[0-9]+[smh]?$', description: 'e.g. `30s`; a bare number is seconds.' })),
    body: Opt(Str({ description: 'Body template for POST/PUT/PATCH.' })),
    bodyParameters: Opt(List(Parameter)),
  },
  { required: ['url'] },
)

const WasmSpec = Obj(
  {
    module: Obj({
      builtin: Opt(Name('A plugin shipped with ark (plugins/).')),
      path: Opt(Name('A .wasm file on the gateway’s filesystem.')),
      configMapKeyRef: Opt(KeySelector),
      url: Opt(Str({ pattern: '^https://', description: 'Downloaded once; `sha256` is then required.' })),
      sha256: Opt(Str({ pattern: '^[a-f0-9]{64}$' })),
    }),
    function: Opt(Name('Exported function to call; default `call`.')),
    allowedHosts: Opt(List(Str(), { description: 'Hosts the plugin may reach over HTTP; none by default.' })),
    config: Opt(List(Parameter, { description: 'Configuration values handed to the plugin.' })),
    limits: Opt(
      Obj({
        timeoutMs: Opt(Int({ minimum: 1 })),
        memoryMiB: Opt(Int({ minimum: 1 })),
        maxInputBytes: Opt(Int({ minimum: 1 })),
        maxOutputBytes: Opt(Int({ minimum: 1 })),
      }),
    ),
  },
  { required: ['module'] },
)

export const Tool = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Tool',
  plural: 'tools',
  internal: 'Tool',
  crd: true,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
    {
      name: 'Reason',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Available")].reason',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        type: Enum(TOOL_TYPES, { description: '`wasm` is ark’s own: any Extism plugin as a tool.' }),
        description: Opt(Str()),
        inputSchema: Opt(FreeObject('JSON Schema of the arguments.')),
        annotations: Opt(
          Obj({
            title: Opt(Str()),
            readOnlyHint: Opt(Bool()),
            destructiveHint: Opt(Bool()),
            idempotentHint: Opt(Bool()),
            openWorldHint: Opt(Bool()),
          }),
        ),
        http: Opt(HttpSpec),
        mcp: Opt(Obj({ mcpServerRef: NamespacedRef, toolName: Name() })),
        agent: Opt(Obj({ name: Name(), namespace: Opt(Str()) })),
        team: Opt(Obj({ name: Name(), namespace: Opt(Str()) })),
        builtin: Opt(Obj({ name: Name() })),
        wasm: Opt(WasmSpec),
      },
      { required: ['type'] },
    ),
    status: Opt(Obj({ state: Opt(Str()), message: Opt(Str()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    const t = spec.type
    for (const other of TOOL_TYPES) {
      if (other !== t && spec[other] !== undefined)
        ctx.error(`spec.${other}`, `is set but type is ${t}; remove it`)
    }
    const missing = () => ctx.error(`spec.${t}`, `is required for type ${t}`)
    let impl: ToolImpl | undefined
    switch (t) {
      case 'http': {
        const h = spec.http
        if (h === undefined) break
        impl = {
          type: 'http',
          http: {
            url: h.url,
            method: h.method ?? 'GET',
            headers: headers(h.headers, 'spec.http.headers', ctx),
            ...(h.body === undefined ? {} : { body: h.body }),
            bodyParameters: parameters(h.bodyParameters, 'spec.http.bodyParameters', ctx),
            ...(h.timeout === undefined ? {} : { timeoutSeconds: httpTimeoutSeconds(h.timeout) }),
          },
        }
        break
      }
      case 'mcp':
        if (spec.mcp)
          impl = {
            type: 'mcp',
            mcp: { server: ref(spec.mcp.mcpServerRef, ctx), toolName: spec.mcp.toolName },
          }
        break
      case 'agent':
        if (spec.agent) impl = { type: 'agent', agent: ref(spec.agent, ctx) }
        break
      case 'team':
        if (spec.team) impl = { type: 'team', team: ref(spec.team, ctx) }
        break
      case 'builtin':
        if (spec.builtin) impl = { type: 'builtin', builtin: { name: spec.builtin.name } }
        break
      case 'wasm': {
        const w = spec.wasm
        if (w === undefined) break
        const m = w.module
        const given = (['builtin', 'path', 'configMapKeyRef', 'url'] as const).filter(
          (k) => m[k] !== undefined,
        )
        if (given.length !== 1) {
          ctx.error('spec.wasm.module', 'must set exactly one of builtin, path, configMapKeyRef, url')
          return { spec: placeholder(spec) }
        }
        let module: WasmModuleSource
        if (m.builtin !== undefined) module = { builtin: m.builtin }
        else if (m.path !== undefined) module = { path: m.path }
        else if (m.configMapKeyRef !== undefined) module = { configMapKeyRef: { ...m.configMapKeyRef } }
        else if (m.url !== undefined && m.sha256 !== undefined) module = { url: m.url, sha256: m.sha256 }
        else {
          ctx.error('spec.wasm.module.sha256', 'is required with url: the download is checked against it')
          return { spec: placeholder(spec) }
        }
        impl = {
          type: 'wasm',
          wasm: {
            module,
            function: w.function ?? 'call',
            allowedHosts: w.allowedHosts ?? [],
            config: parameters(w.config, 'spec.wasm.config', ctx),
            limits: { ...w.limits },
          },
        }
        break
      }
    }
    if (impl === undefined) {
      missing()
      return { spec: placeholder(spec) }
    }
    const out: ToolSpec = {
      ...impl,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      ...(spec.inputSchema === undefined ? {} : { inputSchema: spec.inputSchema }),
      ...(spec.annotations === undefined ? {} : { annotations: spec.annotations }),
    }
    return { spec: out }
  },
  toStatus: (status) => ({
    state: status.conditions.find((c) => c.type === 'Available')?.status === 'True' ? 'Ready' : 'NotReady',
    ...(status.message === undefined ? {} : { message: status.message }),
    conditions: conditionsAs(status, 'Available'),
  }),
})

/** `30s`, `2m`, `1h` or a bare number of seconds. */
function httpTimeoutSeconds(text: string): number {
  const n = Number.parseInt(text, 10)
  const unit = text.at(-1)
  return unit === 'm' ? n * 60 : unit === 'h' ? n * 3600 : n
}

/** A rejected document still needs a well-typed value; it is never stored. */
function placeholder(spec: { description?: string | undefined }): ToolSpec {
  return {
    type: 'builtin',
    builtin: { name: 'noop' },
    ...(spec.description === undefined ? {} : { description: spec.description }),
  }
}
