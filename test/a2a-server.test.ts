/**
 * ARK A2AServer resources in `ark dev` (a manifests folder): discovery reads the remote agent's card (an A2A
 * server built with the SDK, test/fakes/a2a-remote.ts) into status and makes the Agent seed 002 shows, which
 * then answers through the A2A client, with the server's headers from a Secret. A server that cannot be
 * reached is not Ready, says why, and makes no Agent; one removed takes its Agent with it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedded } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import { serve, silentLogger } from '../gateway/index.ts'
import type { RemoteA2A } from './fakes/a2a-remote.ts'
import { startRemoteA2A } from './fakes/a2a-remote.ts'

const TOKEN = 'a2a-canary-token-4f1d2c'

const manifests = (remote: string, legacy: string) => `
apiVersion: v1
kind: Secret
metadata: { name: remote-auth }
stringData: { token: "Bearer ${TOKEN}" }
---
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: remote-server }
spec:
  address: { value: "${remote}" }
  headers:
    - name: Authorization
      value: { valueFrom: { secretKeyRef: { name: remote-auth, key: token } } }
  pollInterval: 1s
---
apiVersion: v1
kind: Secret
metadata: { name: hidden-address }
stringData: { url: "${remote}" }
---
# Its address (whose path may hold a credential) kept in a Secret.
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: hidden-server }
spec:
  address: { valueFrom: { secretKeyRef: { name: hidden-address, key: url } } }
  headers:
    - name: Authorization
      value: { valueFrom: { secretKeyRef: { name: remote-auth, key: token } } }
---
# An older server: its card only at agent.json (v0.3).
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: legacy-server }
spec:
  address: { value: "${legacy}" }
---
# An A2AServer whose name a hand-written Agent already has: that Agent is not taken over.
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: taken }
spec:
  address: { value: "${remote}" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: taken }
spec: { prompt: I was here first., modelRef: { name: nothing } }
---
apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: gone-server }
spec:
  address: { value: "http://127.0.0.1:9/agent" }
`

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('A2AServer in ark dev', () => {
  let remote: RemoteA2A
  let legacy: RemoteA2A
  let system: Embedded
  let dir: string
  let base: string
  let closeServer: () => Promise<void>

  beforeAll(async () => {
    remote = await startRemoteA2A()
    legacy = await startRemoteA2A({ legacyOnly: true })
    dir = await mkdtemp(join(tmpdir(), 'ark-a2a-server-'))
    await writeFile(join(dir, 'servers.yaml'), manifests(remote.url, legacy.url))
    system = await startEmbedded({ manifests: dir, watch: false, log: silentLogger, probeIntervalSeconds: 0 })
    await system.controlPlane.settled()
    const server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
    base = `http://127.0.0.1:${String(server.port)}`
    closeServer = () => server.close()
  }, 60_000)

  afterAll(async () => {
    await closeServer()
    await system.close()
    await remote.close()
    await legacy.close()
    await rm(dir, { recursive: true, force: true })
  })

  const catalog = () => system.controlPlane.catalog
  const condition = (key: string, type: string) =>
    catalog()
      .status(key)
      ?.conditions.find((c) => c.type === type)

  it('reads the card into status and makes the Agent seed 002 shows, which answers through A2A', async () => {
    const agent = await waitFor('the derived agent', () =>
      catalog().get('Agent', { namespace: 'default', name: 'remote-server' }),
    )
    expect(agent.spec.executionEngine?.name).toBe('a2a')
    expect(agent.spec.description).toBe('A remote agent that repeats what it is told.')
    expect(agent.meta.annotations).toMatchObject({
      'ark.mckinsey.com/a2a-server-name': 'remote-server',
      'ark.mckinsey.com/a2a-server-address': remote.url,
      'ark.mckinsey.com/a2a-server-skills': JSON.stringify([
        { name: 'repeat', description: 'Repeats what it is told' },
      ]),
    })
    expect(catalog().status('A2AServer/default/remote-server')?.resolvedAddress).toBe(remote.url)
    expect(condition('A2AServer/default/remote-server', 'CardDiscovered')).toMatchObject({
      status: 'True',
      message: 'agent card "remote-helper" with 1 skill(s)',
    })
    await waitFor('the agent to be Available', () =>
      condition('Agent/default/remote-server', 'Available')?.status === 'True' ? true : undefined,
    )

    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 })
    const done = await openai.chat.completions.create({
      model: 'agent/remote-server',
      messages: [{ role: 'user', content: 'through the server' }],
    })
    expect(done.choices[0]?.message.content).toBe('remote says: through the server')
    // The Secret's header went with the card fetch and the call.
    expect(remote.headers.length).toBeGreaterThan(1)
    expect(remote.headers.every((h) => h.authorization === `Bearer ${TOKEN}`)).toBe(true)
  })

  it('an address from a Secret shows only its origin in status and on the Agent, and is still called whole', async () => {
    const agent = await waitFor('the hidden agent', () =>
      catalog().get('Agent', { namespace: 'default', name: 'hidden-server' }),
    )
    const origin = new URL(remote.url).origin
    expect(catalog().status('A2AServer/default/hidden-server')?.resolvedAddress).toBe(origin)
    expect(agent.meta.annotations['ark.mckinsey.com/a2a-server-address']).toBe(origin)
    await waitFor('the hidden agent to be Available', () =>
      condition('Agent/default/hidden-server', 'Available')?.status === 'True' ? true : undefined,
    )
    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 })
    const done = await openai.chat.completions.create({
      model: 'agent/hidden-server',
      messages: [{ role: 'user', content: 'quietly' }],
    })
    expect(done.choices[0]?.message.content).toBe('remote says: quietly')
  })

  it('finds an older server card at agent.json', async () => {
    await waitFor('the legacy agent', () =>
      catalog().get('Agent', { namespace: 'default', name: 'legacy-server' }),
    )
    expect(catalog().status('A2AServer/default/legacy-server')?.resolvedAddress).toBe(legacy.url)
    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 })
    await waitFor('the legacy agent to be Available', () =>
      condition('Agent/default/legacy-server', 'Available')?.status === 'True' ? true : undefined,
    )
    const done = await openai.chat.completions.create({
      model: 'agent/legacy-server',
      messages: [{ role: 'user', content: 'old times' }],
    })
    expect(done.choices[0]?.message.content).toBe('remote says: old times')
  })

  it('does not take over an Agent of its name that it did not make', async () => {
    const verdict = await waitFor('the name clash', () =>
      condition('A2AServer/default/taken', 'CardDiscovered'),
    )
    expect(verdict).toMatchObject({ status: 'False', reason: 'AgentNameTaken' })
    const agent = catalog().get('Agent', { namespace: 'default', name: 'taken' })
    expect(agent?.spec.executionEngine).toBeUndefined()
    expect(agent?.origin.file).toMatch(/servers\.yaml$/)
  })

  it('a server that cannot be reached is not available, says why, and makes no agent', async () => {
    const discovered = await waitFor('the card fetch to fail', () =>
      condition('A2AServer/default/gone-server', 'CardDiscovered'),
    )
    expect(discovered).toMatchObject({ status: 'False', reason: 'CardUnreachable' })
    expect(discovered.message).toContain('no A2A agent card at http://127.0.0.1:9/agent')
    expect(condition('A2AServer/default/gone-server', 'Available')).toMatchObject({
      status: 'False',
      reason: 'CardUnreachable',
    })
    expect(catalog().get('Agent', { namespace: 'default', name: 'gone-server' })).toBeUndefined()
  })

  it('the agent becomes unavailable when its server stops answering, and goes when the server is removed', async () => {
    remote.cardStatus = 503
    await waitFor('the agent to be unavailable', () =>
      condition('Agent/default/remote-server', 'Available')?.status === 'False' ? true : undefined,
    )
    expect(condition('Agent/default/remote-server', 'Available')?.reason).toBe('A2AServerNotAvailable')
    // No secret in what status says.
    expect(JSON.stringify(catalog().status('A2AServer/default/remote-server'))).not.toContain(TOKEN)
    remote.cardStatus = undefined

    await writeFile(
      join(dir, 'servers.yaml'),
      manifests(remote.url, legacy.url).split('---\n# An older')[0] ?? '',
    )
    await system.controlPlane.refresh()
    await waitFor('the legacy agent to go', () =>
      catalog().get('Agent', { namespace: 'default', name: 'legacy-server' }) === undefined
        ? true
        : undefined,
    )
    expect(catalog().get('Agent', { namespace: 'default', name: 'remote-server' })).toBeDefined()
  })
})
