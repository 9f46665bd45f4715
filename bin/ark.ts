#!/usr/bin/env node
/**
 * The `ark` command line. Runs on Node >= 22.18 (type stripping) and Deno 2.
 *
 *   ark validate <path>     check manifests; exit 1 when any error
 *   ark get <kind> [name]   kubectl-like table of resources and their Available condition
 *   ark crds [--out dir]    the CustomResourceDefinitions, generated from the schemas
 *   ark dev                 serve the manifests folder's agents on 127.0.0.1:8080, following it live
 *   ark gateway             the same edge, submitting every task to Redis Streams for pool workers
 *   ark worker --agent n    a pool worker: runs one agent's tasks from its Redis stream
 *   ark controller          the control plane on a Kubernetes API: status, Events, Queries, leader election
 */
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateCrds } from '../controller/api/index.ts'
import { REACHABLE, startControlPlane } from '../controller/index.ts'
import {
  DEFAULTS,
  PROVIDER_DEFAULTS,
  SERVE_DEFAULTS,
  STREAM_DEFAULTS,
  JwtVerifier,
  KeyRing,
  isKeyId,
  newKey,
  createLogger,
  startTracing,
  defaultAllowedHosts,
  followKeysFile,
  followKeysSecret,
  isLoopbackHost,
  redactedUrl,
  serve,
} from '../gateway/index.ts'
import type { ObjectRef } from '../controller/api/index.ts'
import type {
  AllowedHosts,
  JwtOptions,
  KeySource,
  RedisSettings,
  ServeTimeouts,
  StreamLimits,
} from '../gateway/index.ts'
import { startEmbedded } from './embedded.ts'
import { parseTarget, runQuery } from './query.ts'
import { queryOnCluster } from './query-cluster.ts'
import { runFile } from './run.ts'
import { worker } from './worker.ts'
import { renderGet, resolveKind } from './get.ts'
import { renderValidation } from './validate.ts'
import { untilStopped } from './signals.ts'

const HELP = `ark — Agentic Runtime for Kubernetes

Usage:
  ark validate <path>              Check a folder (or file) of manifests. Prints every problem;
                                   exits 1 when any is an error.
  ark get <kind> [name]            List resources and their Available condition.
        -f, --manifests <path>     Folder or file to read (env ARK_MANIFESTS, default ./examples)
        -n, --namespace <ns>       Namespace (default: default)
        -A, --all-namespaces       Every namespace
        -o, --output <format>      wide | name | yaml | json (yaml/json print ark's resolved view)
        --kubeconfig <file>        Read from a cluster instead of a folder (the status ark controller wrote)
  ark query <target> [input]       Run one query on a manifests folder in this process and print it as
                                   kubectl describe prints a Query (phase, usage, response, Events).
                                   <target>: agent/<name>, team/<name>, model/<name> (or <kind>/<ns>/<name>,
                                   or an agent's name); the input is read from stdin when not given.
                                   Exits 0 when done, 1 when the target failed or could not run.
        -f, --manifests <path>     (env ARK_MANIFESTS, default ./examples)
        -p, --param <name=value>   A query parameter (repeatable)
        --watch                    Print each Event as it happens
        --task-timeout <s>         (default 120)
        --kubeconfig <file>        Create a Query on that cluster instead, in -n <namespace> (default
                                   default), and wait for ark controller to run it
  ark run <file> [input]           Run the team (or agent) a file declares, in this process, printed as
                                   ark query prints it; the input is read from stdin when not given.
        --target <target>          Which one, when the file declares several (as ark query names it)
        --provider mock|auto       mock: every model answered by the mock, nothing leaves the process;
                                   auto (default): real models where a key is set, the mock otherwise
        --dry-run                  Run nothing: what would run, and each agent's first-call input tokens
        --watch, -p, --task-timeout   As for ark query
  ark chat <target>                Talk with an agent, team or model a line at a time, answers streamed.
                                   /reset starts again, /exit (or the end of input) leaves; exits 1 when
                                   a turn failed.
        -f, --manifests <path>     The folder to serve in this process (env ARK_MANIFESTS, default ./examples)
        --url <url>                A running gateway instead (http://localhost:8080); its key from the
                                   environment, ARK_API_KEY
  ark crds [--out <dir>]           Print the CRDs, or write one file per CRD into <dir>.
  ark keys new [--id <name>]       Make an API key: prints the key once, and its digest for --api-keys.
  ark dev                          Serve the agents of a manifests folder: OpenAI-compatible API,
                                   in-process pools, metrics; follows the folder live, logs JSON lines.
                                   With REDIS_URL, tasks go through Redis Streams and this process
                                   also runs a worker for every agent.
        -f, --manifests <path>     (env ARK_MANIFESTS, default ./examples)
        --host <addr>              (env HOST, default 127.0.0.1)
        --port <n>                 (env PORT, default 8080; 0 picks a free port)
        --max-body-bytes <n>       Largest request body (env ARK_MAX_BODY_BYTES, default 4194304)
        --allowed-hosts <names>    Host headers served, comma-separated (.example.com: any name under it);
                                   loopback names always. Default: a loopback --host serves only loopback
                                   names (DNS rebinding), any other --host every name (env ARK_ALLOWED_HOSTS)
        --cors-origins <origins>   Origins browsers may call from, comma-separated; default none
                                   (env ARK_CORS_ORIGINS)
        --access-log               A JSON line per request (component "access"; env ARK_ACCESS_LOG=true)
        --api-keys <file>          Every call needs Authorization: Bearer <key> of a key this file lists
                                   ({keys: [{id, sha256}]}; ark keys new makes them), reread when it
                                   changes; /healthz, /readyz, A2A cards and /metrics stay open (env
                                   ARK_API_KEYS). 401 in each protocol's shape; metrics say key ids. A key
                                   may have a scope (namespaces, targets, routes) and limits
                                   (requestsPerSecond, burst, tokensPerDay); namespaces: limits namespaces
        --api-keys-secret <ns/n>   The same from a Secret (data: <id>: <sha256> or a YAML mapping of it, a
                                   scope and limits; _namespaces: namespaces' limits) in a watched
                                   namespace, ark gateway on a cluster (env ARK_API_KEYS_SECRET)
        --jwt-issuer <iss>         Also take JWTs as bearer tokens: signed by the identity provider whose
                                   iss this is (env ARK_JWT_ISSUER), for --jwt-audience <aud> (env
                                   ARK_JWT_AUDIENCE), with keys from --jwks-url <https url> or --jwks-file
                                   <file> (env ARK_JWKS_URL, ARK_JWKS_FILE). Their scope claim's
                                   ark:routes:, ark:namespaces:, ark:targets: entries narrow them
        --metrics-auth <bool>      /metrics needs a key too (env ARK_METRICS_AUTH, default false)
        --a2a-push-hosts <hosts>   Hosts A2A push notifications may be sent to, comma-separated, as a
                                   webhook tool's allowedHosts (* = any public host); default none: push
                                   notifications are off (env ARK_A2A_PUSH_HOSTS)
        --headers-timeout <s>      A connection's request headers must arrive within (env
                                   ARK_HEADERS_TIMEOUT, default 10; Node only, Deno has its own)
        --body-timeout <s>         A request's body must arrive within (env ARK_BODY_TIMEOUT, default 30)
        --idle-timeout <s>         Idle keep-alive connections close after (env ARK_IDLE_TIMEOUT, default 5;
                                   Node only)
        --max-in-flight <n>        Runs (chat completions, A2A sends, MCP tool calls) this gateway admits
                                   at once; past it 503 overloaded with Retry-After 1 (env
                                   ARK_MAX_IN_FLIGHT, default 4096)
        --wait-for-workers <bool>  ark gateway: queue a run for a pool no worker serves (one autoscaled from
                                   zero) instead of answering 503 no_workers at once (env
                                   ARK_WAIT_FOR_WORKERS, default false)
        --drain-delay <s>          On SIGTERM, /readyz fails this long while requests are still served
                                   (env ARK_DRAIN_DELAY; default 5 for ark gateway, 0 for ark dev)
        --shutdown-grace <s>       Then no new connection is taken and requests in flight get this long to
                                   finish before they are cut (env ARK_SHUTDOWN_GRACE; default 25 for ark
                                   gateway, 10 for ark dev). A second signal stops at once
        --stream-write-timeout <s> A streaming client that reads nothing this long while the answer waits
                                   is cut and its run cancelled (env ARK_STREAM_WRITE_TIMEOUT, default 30)
        --stream-max-buffer <n>    Bytes one streamed answer may hold for a slow client; past it the stream
                                   is cut and its run cancelled (env ARK_STREAM_MAX_BUFFER, default 8388608)
        --max-iterations <n>       Tool-loop bound per task (env ARK_MAX_ITERATIONS, default 20)
        --task-timeout <seconds>   For agents without limits.timeoutSeconds (env ARK_TASK_TIMEOUT, default 120)
        --pool-concurrency <n>     Tasks at once per agent without replicas/maxConcurrentTasks
                                   (env ARK_POOL_CONCURRENCY, default 64)
        --queue-size <n>           Tasks waiting per agent beyond that; more get 429 (env ARK_QUEUE_SIZE,
                                   default 256)
        --queue-wait <s>           ark dev, ark gateway: a request's task that no worker took in this time
                                   leaves the queue and is answered 503 queue_timeout (env ARK_QUEUE_WAIT,
                                   default 30; Queries wait until their deadline)
        --models-without-key <m>   mock | unavailable: what a model with no API key anywhere does
                                   (env ARK_MODELS_WITHOUT_KEY, default mock: the mock model answers)
        --provider-timeout <s>     Per-attempt timeout of a model call (env ARK_PROVIDER_TIMEOUT, default 60)
        --provider-retries <n>     Retries on 429/5xx/connection errors, Retry-After honoured
                                   (env ARK_PROVIDER_RETRIES, default 2)
        --probe-interval <s>       Model probes for agents' own model ids; Models use their pollInterval;
                                   0 turns probes off (env ARK_PROBE_INTERVAL, default 60)
        --sandbox-threads <n>      Threads for webhook and Wasm tool calls; more calls wait
                                   (env ARK_SANDBOX_THREADS, default 4)
        --redis-url <url>          Pools on Redis Streams (env REDIS_URL; default: in-process pools)
        --redis-prefix <p>         Key prefix in Redis (env ARK_REDIS_PREFIX, default ark)
        --claim-idle <s>           A task held this long without renewal is taken over by another worker
                                   (env ARK_CLAIM_IDLE, default 30); each retry waits twice as long. A
                                   dead worker's tasks (silent 3 s) are taken over within seconds anyway
        --max-attempts <n>         Attempts before a task is dead-lettered (env ARK_MAX_ATTEMPTS, default 3)
  ark gateway                      The edge only: the same API and flags as ark dev, every task submitted
                                   to its pool's Redis stream for ark worker processes; needs --redis-url.
                                   Several replicas may share one Redis. With --source cluster (in a pod,
                                   its ServiceAccount) or --kubeconfig <file> it reads resources and their
                                   status from a cluster (read-only; --namespaces a,b limits it), as ark
                                   controller writes them.
  ark worker --agent <ns>/<name>   A pool worker: runs the agent's tasks from its Redis stream (the
                                   agent's tools, models and limits come from the manifests); serves
                                   /healthz, /readyz (semantic probe verdict) and /metrics. Flags as
                                   ark dev (manifests, provider and sandbox settings, Redis), and:
        --agent <ns>/<name>        The pool (env ARK_AGENT; a bare name means namespace default)
        --port <n>                 Health and metrics port (env PORT, default 8081)
        --concurrency <n>          Tasks at once (env ARK_WORKER_CONCURRENCY; default the agent's
                                   limits.maxConcurrentTasks, else 16)
        --shutdown-grace <s>       On SIGTERM, running tasks get this long to finish before they are
                                   handed back to the pool (env ARK_SHUTDOWN_GRACE, default 25)
        --id <name>                Consumer name in Redis (env ARK_ID, default <hostname>-<random>)
        --shared                   Instead of --agent: every agent without a pool of its own (no
                                   replicas: ARK Agents), as they come and go (env ARK_WORKER_SHARED=true)
        --source <folder|cluster>  Where resources come from (env ARK_SOURCE, default folder). cluster:
                                   the pod's ServiceAccount, else KUBECONFIG or ~/.kube/config; a pool
                                   worker reads its agent's namespace only (ark gateway takes it too)
        --kubeconfig <file>        Read the agent and what it uses from a cluster instead of a folder
  ark controller                   The control plane on a Kubernetes API: watches every ark resource (both
                                   dialects, their ConfigMaps and Secrets), and while it holds the
                                   ark-controller Lease writes status and Events, probes models and runs
                                   Queries (in this process, or on Redis pools with --redis-url). Serves
                                   /healthz, /readyz and /metrics. Provider, sandbox and pool flags as ark dev.
        --kubeconfig <file>        (env KUBECONFIG; default ~/.kube/config, else the pod's service account)
        --namespaces <a,b>         Namespaces to watch (env ARK_NAMESPACES; default all)
        --port <n>                 Health and metrics port (env PORT, default 8082)
        --max-concurrent-queries <n>  Queries running at once, shared fairly across namespaces
                                   (env ARK_MAX_CONCURRENT_QUERIES, default 64)
        --event-qps <n>            Kubernetes Events written a second at most, after --event-burst <n>
                                   (env ARK_EVENT_QPS, default 50; ARK_EVENT_BURST, default 100), as
                                   kubelet's flags; Warnings and Query start/complete go first
        --leader-elect <bool>      true | false (env ARK_LEADER_ELECT, default true)
        --lease-namespace <ns>     Where the ark-controller Lease lives (env POD_NAMESPACE; default the
                                   kubeconfig's namespace)
        --lease-duration <s>       (env ARK_LEASE_DURATION, default 15), --renew-deadline <s> (default 10),
        --retry-period <s>         (default 2): Kubernetes' usual leader-election durations
        --id <name>                This replica in the Lease and in Query status (env ARK_ID, POD_NAME)
        --worker-image <image>     Run every agent with replicas (ArkAgents, ArkTeam roles) as a Deployment
                                   of \`ark worker --agent <ns>/<name>\` on this image, in the agent's
                                   namespace, with the ServiceAccount and RoleBinding ark-worker and the
                                   Secret ark-worker-redis there (env ARK_WORKER_IMAGE; needs --redis-url).
                                   The Secret ark-providers of that namespace, if any, is the workers'
                                   environment (provider keys). Default: no Deployments
        --worker-pull-policy <p>   Always | IfNotPresent | Never (env ARK_WORKER_PULL_POLICY)
        --worker-pull-secrets <a,b>  imagePullSecrets of the pools' pods: Secrets of these names must exist
                                   in each agent's namespace (env ARK_WORKER_PULL_SECRETS)
        --keda <bool>              A KEDA ScaledObject per pool: 0 to its replicas on its stream's lag
                                   (env ARK_KEDA, default false); --keda-tasks-per-worker <n> unanswered
                                   tasks per worker (ARK_KEDA_TASKS_PER_WORKER, default 5), --keda-cooldown
                                   <s> (ARK_KEDA_COOLDOWN, default 300)
  ark --help | ark --version

Kinds for get: agents, models, tools, teams, memories, queries, mcpservers, a2aservers,
executionengines, evaluations, services, settings, configmaps, secrets, all
(singular and dialect names also work: agent, arkagents, arkteam, cm, ...).

Environment:
  ARK_MANIFESTS    default manifests folder
  ARK_LOG_LEVEL    debug | info | warn | error (default info)
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...
                   traces as OTLP over HTTP (JSON) when set; off otherwise (README, Traces)
  OPENAI_API_KEY, OPENAI_BASE_URL (e.g. Ollama's http://localhost:11434/v1), AZURE_OPENAI_API_KEY,
  ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
                   defaults for Models that do not set them, and for ArkAgent model ids

Routes served by ark dev and ark gateway: POST /v1/chat/completions, GET /v1/models, GET /metrics, GET /healthz, GET /readyz.
ark controller serves GET /healthz, /readyz and /metrics.
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
      param: { type: 'string', short: 'p', multiple: true },
      watch: { type: 'boolean' },
      url: { type: 'string' },
      target: { type: 'string' },
      provider: { type: 'string' },
      'dry-run': { type: 'boolean' },
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A' },
      output: { type: 'string', short: 'o' },
      out: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'allowed-hosts': { type: 'string' },
      'a2a-push-hosts': { type: 'string' },
      'cors-origins': { type: 'string' },
      'access-log': { type: 'boolean' },
      'headers-timeout': { type: 'string' },
      'body-timeout': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'stream-write-timeout': { type: 'string' },
      'stream-max-buffer': { type: 'string' },
      'max-iterations': { type: 'string' },
      'task-timeout': { type: 'string' },
      'pool-concurrency': { type: 'string' },
      'queue-size': { type: 'string' },
      'queue-wait': { type: 'string' },
      'models-without-key': { type: 'string' },
      'provider-timeout': { type: 'string' },
      'provider-retries': { type: 'string' },
      'probe-interval': { type: 'string' },
      'sandbox-threads': { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-prefix': { type: 'string' },
      'claim-idle': { type: 'string' },
      'max-attempts': { type: 'string' },
      agent: { type: 'string' },
      concurrency: { type: 'string' },
      'shutdown-grace': { type: 'string' },
      'drain-delay': { type: 'string' },
      'max-in-flight': { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwt-audience': { type: 'string' },
      'jwks-url': { type: 'string' },
      'jwks-file': { type: 'string' },
      'wait-for-workers': { type: 'string' },
      id: { type: 'string' },
      kubeconfig: { type: 'string' },
      namespaces: { type: 'string' },
      'leader-elect': { type: 'string' },
      'lease-namespace': { type: 'string' },
      'lease-duration': { type: 'string' },
      'renew-deadline': { type: 'string' },
      'retry-period': { type: 'string' },
      'max-concurrent-queries': { type: 'string' },
      'event-qps': { type: 'string' },
      'event-burst': { type: 'string' },
      source: { type: 'string' },
      'api-keys': { type: 'string' },
      'api-keys-secret': { type: 'string' },
      'metrics-auth': { type: 'string' },
      shared: { type: 'boolean' },
      'worker-image': { type: 'string' },
      'worker-pull-policy': { type: 'string' },
      'worker-pull-secrets': { type: 'string' },
      keda: { type: 'string' },
      'keda-tasks-per-worker': { type: 'string' },
      'keda-cooldown': { type: 'string' },
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
      const kubeconfig = values.kubeconfig
      const namespace = values['all-namespaces'] === true ? undefined : (values.namespace ?? 'default')
      const cp =
        kubeconfig === undefined
          ? await startControlPlane(manifests, { watch: false })
          : await (
              await import('./cluster.ts')
            ).openClusterCatalog({
              kubeconfig,
              ...(namespace === undefined ? {} : { namespaces: [namespace] }),
              dataPlane: false,
            })
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
    case 'query':
    case 'run': {
      const [first, ...words] = rest
      if (first === undefined) {
        console.error(
          command === 'query'
            ? 'ark query: which target? Usage: ark query <agent/name|team/name|model/name> [input]'
            : 'ark run: which file? Usage: ark run <file> [input]',
        )
        return 2
      }
      const parameters: Record<string, string> = {}
      for (const p of values.param ?? []) {
        const at = p.indexOf('=')
        if (at <= 0) {
          console.error(`ark ${command}: --param ${JSON.stringify(p.slice(0, 100))} is not name=value`)
          return 2
        }
        parameters[p.slice(0, at)] = p.slice(at + 1)
      }
      const input = words.length > 0 ? words.join(' ') : await readStdin()
      if (input.trim() === '') {
        console.error(
          `ark ${command}: no input: give it after the ${command === 'query' ? 'target' : 'file'}, or on stdin`,
        )
        return 2
      }
      const timeout = Number(values['task-timeout'] ?? 120)
      if (!(Number.isInteger(timeout) && timeout > 0)) {
        console.error(`ark ${command}: --task-timeout must be a whole number of seconds above 0`)
        return 2
      }
      const provider = values.provider ?? 'auto'
      if (provider !== 'mock' && provider !== 'auto') {
        console.error(
          `ark ${command}: --provider must be mock or auto, got ${JSON.stringify(provider.slice(0, 40))}`,
        )
        return 2
      }
      const common = {
        input,
        parameters,
        watch: values.watch === true,
        timeoutSeconds: timeout,
        out: (text: string) => process.stdout.write(text),
        err: (text: string) => process.stderr.write(text),
      }
      const kubeconfig = values.kubeconfig
      if (command === 'query' && kubeconfig !== undefined) {
        const parsed = parseTarget(first, values.namespace)
        if ('error' in parsed) {
          console.error(`ark query: ${parsed.error}`)
          return 2
        }
        return exitOnceWritten(await queryOnCluster({ ...common, kubeconfig, ...parsed }))
      }
      const code =
        command === 'query'
          ? await runQuery({ ...common, manifests, target: first, withoutKey: 'mock' })
          : await runFile({
              ...common,
              file: first,
              ...(values.target === undefined ? {} : { target: values.target }),
              provider,
              dryRun: values['dry-run'] === true,
            })
      // Done. A name lookup still under way (another agent's unreachable MCP server: getaddrinfo cannot be
      // cancelled) would hold the process for the resolver's timeout: leave once the output is written.
      return exitOnceWritten(code)
    }
    case 'chat': {
      const target = rest[0]
      if (target === undefined || rest.length > 1) {
        console.error(
          'ark chat: which target? Usage: ark chat <agent/name|team/name|model/name> [--url <gateway>]',
        )
        return 2
      }
      const url = values.url
      if (url !== undefined && !/^https?:\/\/[^/]/.test(url)) {
        console.error('ark chat: --url must be an http(s) URL, e.g. http://localhost:8080')
        return 2
      }
      const apiKey = process.env.ARK_API_KEY
      // Loaded here: the openai SDK it talks through costs every other command's process about 30 MiB.
      const { runChat } = await import('./chat.ts')
      const code = await runChat({
        target,
        ...(url === undefined ? {} : { url }),
        ...(apiKey === undefined || apiKey === '' ? {} : { apiKey }),
        manifests,
        input: process.stdin,
        output: process.stdout,
        prompt: process.stdin.isTTY,
      })
      return exitOnceWritten(code)
    }
    case 'keys': {
      if (rest[0] !== 'new') {
        console.error('ark keys: the only subcommand is `ark keys new [--id <name>]`')
        return 2
      }
      const id = values.id ?? 'default'
      if (!isKeyId(id)) {
        console.error(
          `ark keys new: --id must be a lowercase name (letters, digits, '-', '.', '_'), got ${JSON.stringify(id)}`,
        )
        return 2
      }
      const made = newKey()
      console.log(`API key (give it to the caller; ark keeps only its digest, and cannot show it again):

  ${made.key}

In a keys file (ark dev/gateway --api-keys <file>):

keys:
  - id: ${id}
    sha256: ${made.sha256}

Or in a Secret (ark gateway --api-keys-secret <namespace>/<name>):

  kubectl create secret generic ark-api-keys --from-literal=${id}=${made.sha256}`)
      return 0
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
    case 'gateway':
    case 'worker':
    case 'controller': {
      // Tracing first (the OTEL_* variables; off unless they ask): what the command builds is traced from the
      // start, and its last spans are exported when it stops.
      const tracing = await startTracing(process.env, `ark-${command}`, createLogger('tracing'))
      try {
        return await serveCommand(command)
      } finally {
        await tracing?.shutdown()
      }
    }
    default:
      console.error(`ark: unknown command "${command}" (see ark --help)`)
      return 2
  }

  async function serveCommand(command: 'dev' | 'gateway' | 'worker' | 'controller'): Promise<number> {
    const number = (flag: string, env: string, fallback: number, min: number) => {
      const raw = (values as Record<string, string | undefined>)[flag] ?? process.env[env]
      if (raw === undefined || raw === '') return fallback
      const n = Number(raw)
      if (!Number.isInteger(n) || n < min) {
        throw new Error(`--${flag} (${env}) must be an integer >= ${String(min)}, got ${JSON.stringify(raw)}`)
      }
      return n
    }
    const choice = <T extends string>(flag: string, env: string, options: readonly T[], fallback: T): T => {
      const raw = (values as Record<string, string | undefined>)[flag] ?? process.env[env]
      if (raw === undefined || raw === '') return fallback
      if (!(options as readonly string[]).includes(raw)) {
        throw new Error(`--${flag} (${env}) must be one of ${options.join(', ')}, got ${JSON.stringify(raw)}`)
      }
      return raw as T
    }
    const redisUrl = values['redis-url'] ?? process.env.REDIS_URL
    const redis: RedisSettings | undefined =
      redisUrl === undefined || redisUrl === ''
        ? undefined
        : { url: redisUrl, prefix: values['redis-prefix'] ?? process.env.ARK_REDIS_PREFIX ?? 'ark' }
    if (redis !== undefined) checkRedisUrl(redis.url)
    if (command !== 'dev' && command !== 'controller' && redis === undefined)
      throw new Error(
        `ark ${command} needs Redis: set --redis-url or REDIS_URL (e.g. redis://127.0.0.1:6379)`,
      )
    const common = {
      manifests,
      host: values.host ?? process.env.HOST ?? '127.0.0.1',
      maxIterations: number('max-iterations', 'ARK_MAX_ITERATIONS', DEFAULTS.maxIterations, 1),
      taskTimeoutMs: number('task-timeout', 'ARK_TASK_TIMEOUT', DEFAULTS.taskTimeoutMs / 1000, 1) * 1000,
      providers: {
        env: process.env,
        withoutKey: choice('models-without-key', 'ARK_MODELS_WITHOUT_KEY', ['mock', 'unavailable'], 'mock'),
        timeoutMs:
          number('provider-timeout', 'ARK_PROVIDER_TIMEOUT', PROVIDER_DEFAULTS.timeoutMs / 1000, 1) * 1000,
        maxRetries: number('provider-retries', 'ARK_PROVIDER_RETRIES', PROVIDER_DEFAULTS.maxRetries, 0),
      },
      sandboxThreads: number('sandbox-threads', 'ARK_SANDBOX_THREADS', 4, 1),
      claimIdleMs: number('claim-idle', 'ARK_CLAIM_IDLE', 30, 1) * 1000,
      maxAttempts: number('max-attempts', 'ARK_MAX_ATTEMPTS', 3, 1),
    }
    const list = (flag: string, env: string): string[] | undefined => {
      const raw = (values as Record<string, string | undefined>)[flag] ?? process.env[env]
      if (raw === undefined || raw.trim() === '') return undefined
      return raw
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '')
    }
    /**
     * Where the gateway and workers read resources: a folder (default), or a cluster with --source cluster
     * (in a pod: its ServiceAccount; else KUBECONFIG or ~/.kube/config) or --kubeconfig <file>.
     */
    const cluster = (): { cluster?: { kubeconfig?: string; namespaces?: string[] } } => {
      const from = choice(
        'source',
        'ARK_SOURCE',
        ['folder', 'cluster'],
        values.kubeconfig === undefined ? 'folder' : 'cluster',
      )
      if (from === 'folder') {
        if (values.kubeconfig !== undefined)
          throw new Error('--kubeconfig reads a cluster: it cannot go with --source folder')
        return {}
      }
      const namespaces = list('namespaces', 'ARK_NAMESPACES')
      return {
        cluster: {
          ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
          ...(namespaces === undefined ? {} : { namespaces }),
        },
      }
    }
    /** --api-keys <file> or --api-keys-secret <ns>/<name>: who may call (ark dev, ark gateway). */
    const apiKeys = (): DevOptions['auth'] => {
      const file = values['api-keys'] ?? process.env.ARK_API_KEYS
      const secret = values['api-keys-secret'] ?? process.env.ARK_API_KEYS_SECRET
      const metrics = choice('metrics-auth', 'ARK_METRICS_AUTH', ['true', 'false'], 'false') === 'true'
      const given = (v: string | undefined): v is string => v !== undefined && v !== ''
      if (given(file) && given(secret))
        throw new Error('--api-keys (ARK_API_KEYS) and --api-keys-secret (ARK_API_KEYS_SECRET): give one')
      const jwt = jwtOptions()
      if (given(file)) return { file, metrics, ...(jwt === undefined ? {} : { jwt }) }
      if (given(secret)) {
        if (!('cluster' in cluster()))
          throw new Error(
            '--api-keys-secret reads a Secret of the cluster: it needs --source cluster or --kubeconfig',
          )
        const [namespace = '', name = '', ...rest] = secret.split('/')
        const watched = list('namespaces', 'ARK_NAMESPACES')
        if (watched !== undefined && !watched.includes(namespace))
          throw new Error(
            `--api-keys-secret ${secret}: namespace ${namespace} is not in --namespaces (${watched.join(',')}), so the Secret would never be read`,
          )
        if (
          // A namespace is a DNS label (no dots); a Secret's name a DNS subdomain.
          !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace) ||
          !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) ||
          rest.length > 0
        )
          throw new Error(
            `--api-keys-secret (ARK_API_KEYS_SECRET) must be <namespace>/<name>, got ${JSON.stringify(secret)}`,
          )
        return { secret: { namespace, name }, metrics, ...(jwt === undefined ? {} : { jwt }) }
      }
      if (jwt !== undefined) return { metrics, jwt }
      if (metrics)
        throw new Error(
          '--metrics-auth (ARK_METRICS_AUTH) needs keys or tokens: --api-keys, --api-keys-secret or --jwt-issuer',
        )
      return undefined
    }
    const jwtOptions = (): JwtOptions | undefined => {
      const issuer = values['jwt-issuer'] ?? process.env.ARK_JWT_ISSUER ?? ''
      const audience = values['jwt-audience'] ?? process.env.ARK_JWT_AUDIENCE ?? ''
      const url = values['jwks-url'] ?? process.env.ARK_JWKS_URL ?? ''
      const file = values['jwks-file'] ?? process.env.ARK_JWKS_FILE ?? ''
      if (issuer === '' && audience === '' && url === '' && file === '') return undefined
      if (issuer === '' || audience === '')
        throw new Error('JWTs need both --jwt-issuer (ARK_JWT_ISSUER) and --jwt-audience (ARK_JWT_AUDIENCE)')
      if ((url === '') === (file === ''))
        throw new Error(
          'JWTs need their signing keys from one of --jwks-url (ARK_JWKS_URL) or --jwks-file (ARK_JWKS_FILE)',
        )
      if (url !== '') {
        let u: URL
        try {
          u = new URL(url)
        } catch {
          throw new Error(`--jwks-url (ARK_JWKS_URL) is not a URL: ${JSON.stringify(url.slice(0, 200))}`)
        }
        if (u.protocol !== 'https:' && !isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))
          throw new Error('--jwks-url (ARK_JWKS_URL) must be https (plain http only on loopback)')
        return { issuer, audience, jwks: { url } }
      }
      return { issuer, audience, jwks: { file } }
    }
    if (command === 'controller') {
      const namespaces = list('namespaces', 'ARK_NAMESPACES')
      const leaseNamespace = values['lease-namespace'] ?? process.env.POD_NAMESPACE
      const kubeconfig = values.kubeconfig ?? process.env.KUBECONFIG
      const image = values['worker-image'] ?? process.env.ARK_WORKER_IMAGE
      const keda = choice('keda', 'ARK_KEDA', ['true', 'false'], 'false') === 'true'
      if (image !== undefined && image !== '' && redis === undefined)
        throw new Error(
          '--worker-image (ARK_WORKER_IMAGE) needs --redis-url (REDIS_URL): pools work through Redis',
        )
      if (keda && (image === undefined || image === ''))
        throw new Error(
          '--keda (ARK_KEDA) scales the pools --worker-image (ARK_WORKER_IMAGE) creates: set both',
        )
      const pullPolicy =
        values['worker-pull-policy'] === undefined && process.env.ARK_WORKER_PULL_POLICY === undefined
          ? undefined
          : choice(
              'worker-pull-policy',
              'ARK_WORKER_PULL_POLICY',
              ['Always', 'IfNotPresent', 'Never'],
              'IfNotPresent',
            )
      // The Kubernetes client loads only for the commands that talk to a cluster.
      const { controller } = await import('./controller.ts')
      return controller({
        ...common,
        redis,
        ...(kubeconfig === undefined ? {} : { kubeconfig }),
        ...(namespaces === undefined ? {} : { namespaces }),
        port: number('port', 'PORT', 8082, 0),
        id:
          values.id ??
          process.env.ARK_ID ??
          process.env.POD_NAME ??
          `${hostname()}-${crypto.randomUUID().slice(0, 8)}`,
        leaderElect: choice('leader-elect', 'ARK_LEADER_ELECT', ['true', 'false'], 'true') === 'true',
        ...(leaseNamespace === undefined || leaseNamespace === '' ? {} : { leaseNamespace }),
        leaseDurationSeconds: number('lease-duration', 'ARK_LEASE_DURATION', 15, 2),
        renewDeadlineSeconds: number('renew-deadline', 'ARK_RENEW_DEADLINE', 10, 1),
        retryPeriodSeconds: number('retry-period', 'ARK_RETRY_PERIOD', 2, 1),
        maxConcurrentQueries: number('max-concurrent-queries', 'ARK_MAX_CONCURRENT_QUERIES', 64, 1),
        eventQps: number('event-qps', 'ARK_EVENT_QPS', 50, 1),
        eventBurst: number('event-burst', 'ARK_EVENT_BURST', 100, 1),
        probeIntervalSeconds: number('probe-interval', 'ARK_PROBE_INTERVAL', 60, 0),
        poolConcurrency: number('pool-concurrency', 'ARK_POOL_CONCURRENCY', DEFAULTS.poolConcurrency, 1),
        maxQueued: number('queue-size', 'ARK_QUEUE_SIZE', DEFAULTS.maxQueued, 0),
        ...(image === undefined || image === ''
          ? {}
          : {
              pools: {
                image,
                ...(pullPolicy === undefined ? {} : { imagePullPolicy: pullPolicy }),
                pullSecrets: list('worker-pull-secrets', 'ARK_WORKER_PULL_SECRETS') ?? [],
                ...(keda
                  ? {
                      keda: {
                        tasksPerWorker: number('keda-tasks-per-worker', 'ARK_KEDA_TASKS_PER_WORKER', 5, 1),
                        cooldownSeconds: number('keda-cooldown', 'ARK_KEDA_COOLDOWN', 300, 0),
                        pollingSeconds: 15,
                      },
                    }
                  : {}),
              },
            }),
      })
    }
    if (command === 'worker') {
      const agent = values.agent ?? process.env.ARK_AGENT
      const shared = values.shared === true || process.env.ARK_WORKER_SHARED === 'true'
      if (shared && agent !== undefined && agent !== '')
        throw new Error('ark worker takes --agent <namespace>/<name> or --shared, not both')
      if (!shared && (agent === undefined || agent === ''))
        throw new Error(
          'ark worker needs --agent <namespace>/<name> (or ARK_AGENT), or --shared for every agent without a pool',
        )
      const concurrency = number('concurrency', 'ARK_WORKER_CONCURRENCY', 0, 1)
      return worker({
        ...common,
        ...cluster(),
        redis: redis as RedisSettings,
        agents: shared ? 'shared' : (agent ?? ''),
        port: number('port', 'PORT', 8081, 0),
        ...(concurrency === 0 ? {} : { concurrency }),
        shutdownGraceMs: number('shutdown-grace', 'ARK_SHUTDOWN_GRACE', 25, 0) * 1000,
        ...(values.id === undefined && process.env.ARK_ID === undefined
          ? {}
          : { id: values.id ?? process.env.ARK_ID ?? '' }),
      })
    }
    const hosts = list('allowed-hosts', 'ARK_ALLOWED_HOSTS')
    const source = cluster()
    if ('cluster' in source && command !== 'gateway')
      throw new Error(
        '--kubeconfig and --source cluster are for ark gateway, ark worker, ark get and ark controller; ark dev reads a folder',
      )
    // A gateway without workers of its own answers at once for a pool that has none, unless pools start on
    // a backlog (KEDA from zero). ark dev's workers are its own.
    const waitForWorkers =
      choice('wait-for-workers', 'ARK_WAIT_FOR_WORKERS', ['true', 'false'], 'false') === 'true'
    return dev({
      ...common,
      mode: command,
      ...source,
      redis:
        redis === undefined || command !== 'gateway' ? redis : { ...redis, requireWorkers: !waitForWorkers },
      port: number('port', 'PORT', 8080, 0),
      allowedHosts:
        hosts === undefined
          ? defaultAllowedHosts(common.host)
          : hosts.includes('*')
            ? 'any'
            : hosts.map((h) => h.toLowerCase()),
      corsOrigins: list('cors-origins', 'ARK_CORS_ORIGINS') ?? [],
      // The flag, or else the variable (true or false, checked).
      accessLog:
        values['access-log'] === true ||
        choice('access-log', 'ARK_ACCESS_LOG', ['true', 'false'], 'false') === 'true',
      a2aPushHosts: list('a2a-push-hosts', 'ARK_A2A_PUSH_HOSTS') ?? [],
      auth: apiKeys(),
      // A laptop's Ctrl-C should not wait for a load balancer; a gateway replica's SIGTERM should.
      drainDelayMs: number('drain-delay', 'ARK_DRAIN_DELAY', command === 'gateway' ? 5 : 0, 0) * 1000,
      shutdownGraceMs:
        number('shutdown-grace', 'ARK_SHUTDOWN_GRACE', command === 'gateway' ? 25 : 10, 0) * 1000,
      timeouts: {
        headersMs:
          number('headers-timeout', 'ARK_HEADERS_TIMEOUT', SERVE_DEFAULTS.headersMs / 1000, 1) * 1000,
        requestMs: number('body-timeout', 'ARK_BODY_TIMEOUT', DEFAULTS.bodyTimeoutMs / 1000, 1) * 1000,
        idleMs: number('idle-timeout', 'ARK_IDLE_TIMEOUT', SERVE_DEFAULTS.idleMs / 1000, 1) * 1000,
      },
      stream: {
        writeTimeoutMs:
          number(
            'stream-write-timeout',
            'ARK_STREAM_WRITE_TIMEOUT',
            STREAM_DEFAULTS.writeTimeoutMs / 1000,
            1,
          ) * 1000,
        maxBufferedBytes: number(
          'stream-max-buffer',
          'ARK_STREAM_MAX_BUFFER',
          STREAM_DEFAULTS.maxBufferedBytes,
          STREAM_DEFAULTS.highWaterBytes,
        ),
      },
      maxBodyBytes: number('max-body-bytes', 'ARK_MAX_BODY_BYTES', DEFAULTS.maxBodyBytes, 1024),
      poolConcurrency: number('pool-concurrency', 'ARK_POOL_CONCURRENCY', DEFAULTS.poolConcurrency, 1),
      maxQueued: number('queue-size', 'ARK_QUEUE_SIZE', DEFAULTS.maxQueued, 0),
      maxInFlight: number('max-in-flight', 'ARK_MAX_IN_FLIGHT', DEFAULTS.maxInFlight, 1),
      maxQueueWaitMs: number('queue-wait', 'ARK_QUEUE_WAIT', DEFAULTS.maxQueueWaitMs / 1000, 1) * 1000,
      probeIntervalSeconds: number('probe-interval', 'ARK_PROBE_INTERVAL', 60, 0),
    })
  }
}

/** A Redis URL ioredis can use: redis:// or rediss://, a host, and a database number if any. */
function checkRedisUrl(url: string): void {
  const fail = (why: string) => new Error(`--redis-url (REDIS_URL) ${why}, e.g. redis://127.0.0.1:6379/0`)
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw fail('is not a URL')
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw fail('must start with redis:// or rediss://')
  if (u.hostname === '') throw fail('has no host')
  const db = u.pathname.replace(/^\//, '')
  if (db !== '' && !/^(0|[1-9]\d{0,4})$/.test(db))
    throw fail(`names database ${JSON.stringify(db)}, not a number`)
}

interface DevOptions {
  readonly mode: 'dev' | 'gateway'
  readonly manifests: string
  /** ark gateway: read resources from a cluster instead of `manifests` (a kubeconfig, else the usual places). */
  readonly cluster?: { readonly kubeconfig?: string; readonly namespaces?: readonly string[] }
  readonly host: string
  readonly port: number
  readonly maxBodyBytes: number
  readonly allowedHosts: AllowedHosts
  readonly corsOrigins: readonly string[]
  readonly accessLog: boolean
  readonly a2aPushHosts: readonly string[]
  /** Where API keys come from; absent: no key is asked for. */
  readonly auth:
    | {
        readonly file?: string
        readonly secret?: ObjectRef
        readonly metrics: boolean
        /** JWTs from an identity provider, beside or instead of keys. */
        readonly jwt?: JwtOptions
      }
    | undefined
  readonly timeouts: ServeTimeouts
  /** On SIGTERM: how long readiness fails while requests are still served, then the grace of those in flight. */
  readonly drainDelayMs: number
  readonly shutdownGraceMs: number
  readonly stream: Pick<StreamLimits, 'writeTimeoutMs' | 'maxBufferedBytes'>
  readonly maxIterations: number
  readonly taskTimeoutMs: number
  readonly poolConcurrency: number
  readonly maxQueued: number
  /** Runs the gateway admits at once; past it 503 overloaded. */
  readonly maxInFlight: number
  /** How long a request's task may wait for a worker; past it 503 queue_timeout. */
  readonly maxQueueWaitMs: number
  readonly providers: {
    env: NodeJS.ProcessEnv
    withoutKey: 'mock' | 'unavailable'
    timeoutMs: number
    maxRetries: number
  }
  readonly probeIntervalSeconds: number
  readonly sandboxThreads: number
  readonly redis: RedisSettings | undefined
  readonly claimIdleMs: number
  readonly maxAttempts: number
}

/**
 * The embedded default: loads the folder, reconciles, serves the gateway, and logs every change until
 * SIGINT/SIGTERM, then stops taking requests and lets running tasks finish.
 */
async function dev(options: DevOptions): Promise<number> {
  const { manifests } = options
  const log = createLogger(options.mode)
  if (options.redis !== undefined)
    log.info('pools on Redis Streams', {
      redis: redactedUrl(options.redis.url),
      workers: options.mode === 'dev' ? 'every agent, in this process' : 'none (ark worker processes)',
    })
  // Keys first: a keys file that cannot be read stops the command before anything listens.
  const keys = options.auth === undefined ? undefined : new KeyRing()
  const keysFile =
    options.auth?.file === undefined || keys === undefined
      ? undefined
      : await followKeysFile(options.auth.file, keys, log)
  const jwt = options.auth?.jwt === undefined ? undefined : await JwtVerifier.start(options.auth.jwt, log)
  // Followed once the catalog is up (below); read by readiness before that.
  const keysSecret: { source?: KeySource } = {}
  const cluster =
    options.cluster === undefined
      ? undefined
      : await (
          await import('./cluster.ts')
        ).openClusterCatalog({
          ...options.cluster,
          onError: (path, err) => log.warn('list/watch failed; retrying', { path, error: String(err) }),
        })
  if (cluster !== undefined) log.info('reading resources from the cluster', { server: cluster.server })
  const draining = { now: false }
  const system = await startEmbedded({
    manifests,
    draining: () => draining.now,
    ...(cluster === undefined ? {} : { cluster }),
    onWatchError: (err) => log.warn('watch error', { error: String(err) }),
    maxBodyBytes: options.maxBodyBytes,
    bodyTimeoutMs: options.timeouts.requestMs,
    allowedHosts: options.allowedHosts,
    corsOrigins: options.corsOrigins,
    accessLog: options.accessLog,
    a2aPushHosts: options.a2aPushHosts,
    stream: options.stream,
    maxIterations: options.maxIterations,
    taskTimeoutMs: options.taskTimeoutMs,
    poolConcurrency: options.poolConcurrency,
    maxQueued: options.maxQueued,
    maxInFlight: options.maxInFlight,
    maxQueueWaitMs: options.maxQueueWaitMs,
    providers: options.providers,
    probeIntervalSeconds: options.probeIntervalSeconds,
    sandboxThreads: options.sandboxThreads,
    // Commands in manifests run only from the user's own folder, never from what a cluster says.
    mcpStdio: options.mode === 'dev' && cluster === undefined,
    // A folder's Queries run where one process owns the folder; a cluster's, in `ark controller`.
    queries: options.mode === 'dev' && cluster === undefined,
    log: createLogger('gateway'),
    processMetrics: !('Deno' in globalThis),
    ...(keys === undefined
      ? {}
      : {
          auth: {
            keys,
            metrics: options.auth?.metrics ?? false,
            ...(jwt === undefined ? {} : { jwt }),
            // The Secret is followed once the catalog is up; until it has been read, the gateway is not ready.
            ready: () => options.auth?.secret === undefined || keysSecret.source?.loaded() === true,
          },
        }),
    ...(options.redis === undefined
      ? {}
      : {
          redis: options.redis,
          workers: options.mode === 'dev',
          claimIdleMs: options.claimIdleMs,
          maxAttempts: options.maxAttempts,
        }),
  })
  const cp = system.controlPlane
  if (options.auth?.secret !== undefined && keys !== undefined)
    keysSecret.source = followKeysSecret(cp.catalog, options.auth.secret, keys, log)
  if (keys !== undefined)
    log.info('API keys required', {
      ...(options.auth?.file === undefined ? {} : { file: options.auth.file }),
      ...(options.auth?.secret === undefined
        ? {}
        : { secret: `${options.auth.secret.namespace}/${options.auth.secret.name}` }),
      keys: keys.size,
      ...(options.auth?.jwt === undefined
        ? {}
        : { jwtIssuer: options.auth.jwt.issuer, jwtAudience: options.auth.jwt.audience }),
      metrics: options.auth?.metrics === true,
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
  // Status writes also come from other conditions: log a condition only when it changed.
  const logged = new Map<string, string>()
  const logCondition = (
    key: string,
    c: { type: string; status: string; reason: string; message: string },
  ) => {
    const id = `${key} ${c.type}`
    const now = `${c.status} ${c.reason} ${c.message}`
    if (logged.get(id) === now) return
    logged.set(id, now)
    const msg = c.type === 'Available' ? 'available' : 'model probe'
    log.info(msg, { resource: key, status: c.status, reason: c.reason, message: c.message })
  }
  const agents = cp.catalog.list('Agent')
  log.info('loaded', {
    ...(cluster === undefined ? { manifests } : { cluster: cluster.server }),
    resources: [...cp.store.list()].length,
    agents: agents.length,
    available: agents.filter((a) =>
      cp.store.status(a.key)?.conditions.some((c) => c.type === 'Available' && c.status === 'True'),
    ).length,
  })
  for (const r of cp.store.list()) {
    for (const c of cp.store.status(r.key)?.conditions ?? []) {
      if (c.type === 'Available' || c.type === REACHABLE) logCondition(r.key, c)
    }
  }
  cp.store.subscribe((events) => {
    for (const e of events) {
      if (e.type === 'status') {
        for (const c of e.status.conditions) {
          if (c.type === 'Available' || c.type === REACHABLE) logCondition(e.resource.key, c)
        }
      } else log.info(e.type, { resource: e.resource.key, file: e.resource.origin.file })
    }
    reportProblems()
  })
  const server = await serve(system.gateway.fetch, {
    host: options.host,
    port: options.port,
    timeouts: options.timeouts,
    ...(system.gateway.lane === undefined ? {} : { lane: system.gateway.lane }),
  })
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${String(server.port)}`
  log.info('serving', { url, openai: `${url}/v1`, mcp: `${url}/mcp`, metrics: `${url}/metrics` })
  if (!isLoopbackHost(options.host) && keys === undefined)
    log.warn(
      'serving beyond loopback without authentication: anyone who can reach this address can run its agents (--api-keys)',
      {
        host: options.host,
      },
    )
  await untilStopped()
  // Graceful: readiness fails first while requests are still served (load balancers take a few seconds to
  // stop sending), then no new connection is taken and requests in flight get the grace to finish. A second
  // signal cuts the wait short.
  draining.now = true
  const hurry = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  if (options.drainDelayMs > 0) {
    log.info('draining: readiness fails; still serving meanwhile', { seconds: options.drainDelayMs / 1000 })
    await Promise.race([sleep(options.drainDelayMs), hurry])
  }
  // As workers say it: no new connections from here on, and requests in flight have the grace.
  log.info('stopping', { graceSeconds: options.shutdownGraceMs / 1000 })
  system.gateway.endIdleStreams()
  const { cut } = await Promise.race([
    server.drain(options.shutdownGraceMs),
    hurry.then(() => server.close().then(() => ({ cut: -1 }))),
  ])
  if (cut !== 0)
    log.warn(
      cut < 0
        ? 'stopped at a second signal: requests in flight were cut'
        : 'requests still in flight at the end of the grace were cut',
      cut < 0 ? {} : { requests: cut },
    )
  log.info('stopped serving')
  keysFile?.close()
  keysSecret.source?.close()
  jwt?.close()
  // Running tasks (its own pools') finish; a second signal does not wait for them.
  const stopped = await Promise.race([system.close().then(() => true), hurry.then(() => false)])
  if (!stopped) log.warn('stopped at a second signal: running tasks were cut')
  return 0
}

/** Exits with `code` once what was written to stdout has been handed on. */
async function exitOnceWritten(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
  process.exit(code)
}

/** All of stdin, as text (`echo hi | ark query agent/x`); empty when it is a terminal. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    ;(timer as { unref?: () => void }).unref?.()
  })

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
