#!/usr/bin/env node
/**
 * The `ark` command line. Runs on Node >= 22.18 (type stripping) and Deno 2.
 *
 *   ark validate <path>     check manifests; exit 1 when any error
 *   ark get <kind> [name]   kubectl-like table of resources and their Available condition
 *   ark crds [--out dir]    the CustomResourceDefinitions, generated from the schemas
 *   ark dev                 load the manifests folder and follow it live
 */
import { parseArgs } from 'node:util'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateCrds } from '../controller/api/index.ts'
import { startControlPlane } from '../controller/index.ts'
import { renderGet, resolveKind } from './get.ts'
import { renderValidation } from './validate.ts'
import { createLogger } from './log.ts'

const HELP = `ark — Agentic Runtime for Kubernetes

Usage:
  ark validate <path>              Check a folder (or file) of manifests. Prints every problem;
                                   exits 1 when any is an error.
  ark get <kind> [name]            List resources and their Available condition.
        -f, --manifests <path>     Folder or file to read (env ARK_MANIFESTS, default ./examples)
        -n, --namespace <ns>       Namespace (default: default)
        -A, --all-namespaces       Every namespace
        -o, --output <format>      wide | name | yaml | json (yaml/json print ark's resolved view)
  ark crds [--out <dir>]           Print the CRDs, or write one file per CRD into <dir>.
  ark dev                          Load the manifests folder, reconcile, and follow changes live,
                                   logging JSON lines. (The gateway joins this command in a later version.)
        -f, --manifests <path>     (env ARK_MANIFESTS, default ./examples)
  ark --help | ark --version

Kinds for get: agents, models, tools, teams, memories, queries, mcpservers, a2aservers,
executionengines, evaluations, services, settings, configmaps, secrets, all
(singular and dialect names also work: agent, arkagents, arkteam, cm, ...).

Environment:
  ARK_MANIFESTS    default manifests folder
  ARK_LOG_LEVEL    debug | info | warn | error (default info)
`

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      manifests: { type: 'string', short: 'f' },
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A' },
      output: { type: 'string', short: 'o' },
      out: { type: 'string' },
    },
  })
  const [command, ...rest] = positionals
  if (values.version === true) {
    console.log('ark 0.1.0')
    return 0
  }
  if (values.help === true || command === undefined || command === 'help') {
    console.log(HELP)
    return command === undefined && values.help !== true ? 2 : 0
  }
  const manifests = values.manifests ?? process.env.ARK_MANIFESTS ?? './examples'

  switch (command) {
    case 'validate': {
      const target = rest[0] ?? values.manifests
      if (target === undefined) {
        console.error('ark validate: which manifests? Usage: ark validate <folder-or-file>')
        return 2
      }
      const cp = await startControlPlane(target, { watch: false })
      try {
        const { text, errors } = renderValidation(cp)
        console.log(text)
        return errors > 0 ? 1 : 0
      } finally {
        await cp.close()
      }
    }
    case 'get': {
      const kindArg = rest[0]
      if (kindArg === undefined) {
        console.error('ark get: which kind? e.g. `ark get agents` (see ark --help)')
        return 2
      }
      const kinds = resolveKind(kindArg)
      if (kinds === undefined) {
        console.error(`ark get: unknown kind "${kindArg}" (see ark --help for the list)`)
        return 2
      }
      const output = values.output ?? 'table'
      if (!['table', 'wide', 'name', 'yaml', 'json'].includes(output)) {
        console.error(`ark get: unknown output format "${output}": use wide, name, yaml or json`)
        return 2
      }
      const cp = await startControlPlane(manifests, { watch: false })
      try {
        const { text, found } = renderGet(cp, kinds, {
          ...(rest[1] === undefined ? {} : { name: rest[1] }),
          namespace: values['all-namespaces'] === true ? undefined : (values.namespace ?? 'default'),
          output: output as 'table' | 'wide' | 'name' | 'yaml' | 'json',
        })
        if (text !== '') console.log(text)
        if (!found) {
          console.error(
            rest[1] === undefined
              ? `No resources found${values['all-namespaces'] === true ? '' : ` in ${values.namespace ?? 'default'} namespace`}.`
              : `Error: ${kindArg} "${rest[1]}" not found`,
          )
          return rest[1] === undefined ? 0 : 1
        }
        return 0
      } finally {
        await cp.close()
      }
    }
    case 'crds': {
      const files = generateCrds()
      if (values.out === undefined) {
        console.log(
          files
            .filter((f) => f.file !== 'kustomization.yaml')
            .map((f) => f.content)
            .join('---\n'),
        )
        return 0
      }
      await mkdir(values.out, { recursive: true })
      // Generated files only: stale CRDs of renamed kinds must not linger.
      for (const f of await readdir(values.out)) if (f.endsWith('.yaml')) await rm(join(values.out, f))
      for (const f of files) await writeFile(join(values.out, f.file), f.content)
      console.log(`wrote ${String(files.length)} files to ${values.out}`)
      return 0
    }
    case 'dev':
      return dev(manifests)
    default:
      console.error(`ark: unknown command "${command}" (see ark --help)`)
      return 2
  }
}

/** Loads the folder, reconciles, and logs every change until SIGINT/SIGTERM. */
async function dev(manifests: string): Promise<number> {
  const log = createLogger('dev')
  const cp = await startControlPlane(manifests, {
    onError: (err) => log.warn('watch error', { error: String(err) }),
  })
  const reported = new Set<string>()
  const reportProblems = () => {
    const now = new Set<string>()
    for (const p of cp.store.problems()) {
      const id = JSON.stringify(p)
      now.add(id)
      if (!reported.has(id)) log[p.severity === 'error' ? 'error' : 'warn']('manifest problem', { ...p })
    }
    reported.clear()
    for (const id of now) reported.add(id)
  }
  reportProblems()
  const agents = cp.catalog.list('Agent')
  log.info('loaded', {
    manifests,
    resources: [...cp.store.list()].length,
    agents: agents.length,
    available: agents.filter((a) =>
      cp.store.status(a.key)?.conditions.some((c) => c.type === 'Available' && c.status === 'True'),
    ).length,
  })
  for (const r of cp.store.list()) {
    const c = cp.store.status(r.key)?.conditions.find((x) => x.type === 'Available')
    if (c !== undefined)
      log.info('available', { resource: r.key, status: c.status, reason: c.reason, message: c.message })
  }
  cp.store.subscribe((events) => {
    for (const e of events) {
      if (e.type === 'status') {
        const c = e.status.conditions.find((x) => x.type === 'Available')
        if (c !== undefined)
          log.info('available', {
            resource: e.resource.key,
            status: c.status,
            reason: c.reason,
            message: c.message,
          })
      } else log.info(e.type, { resource: e.resource.key, file: e.resource.origin.file })
    }
    reportProblems()
  })
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  log.info('stopping')
  await cp.close()
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err)
    console.error(`ark: ${message}`)
    process.exitCode = 2
  },
)
