/**
 * KubeClient's own transport rules, against a local HTTPS server that never answers: a call's timeout
 * counts from the call, also while it waits for a socket behind a full pool, and a client with its own
 * connections does not wait behind another's.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { createServer } from 'node:https'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { KubeClient } from './client.ts'

let dir: string
let server: Server
let ca: Buffer
const hanging: ServerResponse[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ark-kubeclient-'))
  // A throwaway certificate for 127.0.0.1, its own CA.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
    ],
    { cwd: dir, stdio: 'ignore' },
  )
  ca = readFileSync(join(dir, 'cert.pem'))
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, (req, res) => {
    if (req.url?.startsWith('/prefix/ok')) res.end('{"kind":"Status","status":"Prefixed"}')
    else if (req.url?.startsWith('/ok')) res.end('{"kind":"Status","status":"Success"}')
    else if (req.url?.startsWith('/stall')) {
      // Headers and half a body, then nothing: the answer has begun, so only a timeout on the body ends it.
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"kind":')
      hanging.push(res)
    } else hanging.push(res) // never answered until the test ends
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})

afterAll(() => {
  for (const res of hanging) res.destroy()
  server.closeAllConnections()
  server.close()
  rmSync(dir, { recursive: true, force: true })
})

function client(): KubeClient {
  const { port } = server.address() as AddressInfo
  return new KubeClient({
    server: new URL(`https://127.0.0.1:${String(port)}`),
    namespace: 'default',
    tls: { ca },
    headers: () => Promise.resolve({}),
    source: 'test',
  })
}

it('a timeout counts from the call, also while the call waits for a socket; own connections do not wait', async () => {
  const busy = client()
  // Fill the pool (32 sockets) with calls the server never answers.
  const stuck = Array.from({ length: 32 }, () =>
    busy.request('GET', '/hang', { timeoutMs: 60_000 }).catch((err: unknown) => err),
  )
  await expect.poll(() => hanging.length).toBe(32)

  // The 33rd call waits for a socket; its 300 ms must still end it, while the 32 are still hanging.
  await expect(busy.request('GET', '/hang', { timeoutMs: 300 })).rejects.toMatchObject({
    name: 'KubeError',
    reason: 'Timeout',
  })
  expect(hanging.length).toBe(32)

  // A client with its own connections is answered at once.
  const own = busy.withOwnConnections()
  await expect(own.request('GET', '/ok')).resolves.toMatchObject({ status: 'Success' })

  // An answer that starts and then stalls is cut by the same timeout.
  await expect(own.request('GET', '/stall', { timeoutMs: 300 })).rejects.toMatchObject({
    name: 'KubeError',
    reason: 'Timeout',
  })

  own.close()
  busy.close()
  const ended = await Promise.all(stuck)
  expect(ended.every((e) => e instanceof Error)).toBe(true)
})

it('a credential read that hangs (an exec plugin) ends the call at its timeout', async () => {
  const { port } = server.address() as AddressInfo
  const stuck = new KubeClient({
    server: new URL(`https://127.0.0.1:${String(port)}`),
    namespace: 'default',
    tls: { ca },
    headers: () => new Promise(() => undefined),
    source: 'test',
  })
  await expect(stuck.request('GET', '/ok', { timeoutMs: 200 })).rejects.toMatchObject({
    name: 'KubeError',
    reason: 'Timeout',
    message: 'GET /ok: reading the credentials took longer than 200 ms',
  })
  stuck.close()
})

it("keeps the server's own path (a proxy's /k8s/clusters/x) and reads credentials once for calls at once", async () => {
  const { port } = server.address() as AddressInfo
  let reads = 0
  const client = new KubeClient({
    server: new URL(`https://127.0.0.1:${String(port)}/prefix/`),
    namespace: 'default',
    tls: { ca },
    headers: async () => {
      reads += 1
      await new Promise((r) => setTimeout(r, 50))
      return { authorization: 'Bearer t' }
    },
    source: 'test',
  })
  const answers = await Promise.all(
    Array.from({ length: 5 }, () => client.request<{ status: string }>('GET', '/ok')),
  )
  expect(answers.map((a) => a.status)).toEqual(Array(5).fill('Prefixed'))
  expect(reads).toBe(1)
  client.close()
})
