import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { folderSource, readManifests, type FolderSourceOptions } from './folder.ts'
import type { FileState, ManifestSource, SourceBatch } from './source.ts'

let dir: string
let opened: ManifestSource[] = []

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ark-folder-'))
  opened = []
})

afterEach(async () => {
  await Promise.all(opened.map((source) => source.close()))
  await rm(dir, { recursive: true, force: true })
})

/** Writes files under the temp dir, creating folders on the way. */
async function write(files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    await mkdir(path.dirname(file), { recursive: true })
    await writeFile(file, content)
  }
}

/** Starts a source and records what it delivers. Watching is off unless asked for: tests call rescan(). */
async function startSource(options: FolderSourceOptions = { watch: false }, root = dir) {
  const batches: SourceBatch[] = []
  const errors: unknown[] = []
  const source = folderSource(root, { onError: (err) => errors.push(err), ...options })
  opened.push(source)
  await source.start((batch) => batches.push(batch))
  return { source, batches, errors }
}

/** What a consumer holds after applying the batches in order. */
function view(batches: readonly SourceBatch[]): Map<string, FileState> {
  const files = new Map<string, FileState>()
  for (const batch of batches) {
    for (const change of batch.changes) {
      if (change.status === 'removed') files.delete(change.file)
      else files.set(change.file, change)
    }
  }
  return files
}

/** The values of a loaded file's documents, or its status if it is not loaded. */
function valuesOf(state: FileState | undefined): unknown {
  return state?.status === 'loaded' ? state.documents.map((d) => d.value) : state?.status
}

function loaded(file: string, ...values: unknown[]): FileState {
  return {
    file,
    status: 'loaded',
    documents: values.map((value, index) => ({ index, line: 1, value })),
    problems: [],
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('reading a folder', () => {
  it('reads every document of a multi-document file with its index and line, skipping empty ones', async () => {
    await write({ 'agents.yaml': 'a: 1\n---\n---\n# the third one\nb:\n  - 2\n' })
    expect(await readManifests(dir)).toEqual({
      changes: [
        {
          file: 'agents.yaml',
          status: 'loaded',
          documents: [
            { index: 0, line: 1, value: { a: 1 } },
            { index: 2, line: 5, value: { b: [2] } },
          ],
          problems: [],
        },
      ],
      folderProblems: [],
    })
  })

  it('walks nested folders, reads only .yaml/.yml/.json and skips hidden entries and node_modules', async () => {
    await write({
      'top.yaml': 'n: top',
      'sub/deep/x.yml': 'n: x',
      'sub/readme.txt': 'n: txt',
      'sub/.swap.yaml': 'n: hidden file',
      '.git/config.yaml': 'n: hidden folder',
      'node_modules/pkg/m.yaml': 'n: module',
      'b.json': '{"n": "json"}',
    })
    const batch = await readManifests(dir)
    expect(batch.changes).toEqual([
      loaded('b.json', { n: 'json' }),
      loaded('sub/deep/x.yml', { n: 'x' }),
      loaded('top.yaml', { n: 'top' }),
    ])
    expect(batch.folderProblems).toEqual([])
  })

  it('reads a single file given as the root, named as given, whatever its extension', async () => {
    await write({ 'one.txt': 'n: 1\n' })
    const file = path.join(dir, 'one.txt')
    expect(await readManifests(file)).toEqual({ changes: [loaded(file, { n: 1 })], folderProblems: [] })
  })

  it('returns a JSON List as it is, leaving its expansion to the consumer', async () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [{ kind: 'ArkAgent', metadata: { name: 'a' } }] }
    await write({ 'list.json': JSON.stringify(list, null, 2) })
    expect((await readManifests(dir)).changes).toEqual([loaded('list.json', list)])
  })

  it('reports a missing root as a folder problem', async () => {
    const missing = path.join(dir, 'nope')
    expect(await readManifests(missing)).toEqual({
      changes: [],
      folderProblems: [{ severity: 'error', file: missing, message: 'no such file or folder' }],
    })
  })
})

describe('broken manifests', () => {
  it('leaves out a document with a YAML syntax error and still loads the others', async () => {
    await write({ 'bad.yaml': 'a: 1\n---\nb: [1,\n  c: }\n---\nc: 3\n' })
    const [change] = (await readManifests(dir)).changes
    expect(change).toEqual({
      file: 'bad.yaml',
      status: 'loaded',
      documents: [
        { index: 0, line: 1, value: { a: 1 } },
        { index: 2, line: 6, value: { c: 3 } },
      ],
      problems: [
        {
          severity: 'error',
          file: 'bad.yaml',
          index: 1,
          line: 4,
          // One line, with the column, without yaml's multi-line source excerpt.
          message:
            'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ] at line 4, column 6',
        },
      ],
    })
  })

  it('rejects duplicate keys', async () => {
    await write({ 'dup.yaml': 'kind: A\n---\nname: x\nname: y\n' })
    const [change] = (await readManifests(dir)).changes
    expect(change).toEqual({
      file: 'dup.yaml',
      status: 'loaded',
      documents: [{ index: 0, line: 1, value: { kind: 'A' } }],
      problems: [
        {
          severity: 'error',
          file: 'dup.yaml',
          index: 1,
          line: 4,
          message:
            'YAML error: duplicate key "name" at line 4, column 1 (first at line 3); keys of a mapping must be unique',
        },
      ],
    })
  })

  it('marks a file unreadable when no document could be used, so that consumers keep its last state', async () => {
    await write({ 'typo.yaml': 'metadata:\n  name: x\n  name: y\n' })
    expect((await readManifests(dir)).changes).toEqual([
      {
        file: 'typo.yaml',
        status: 'unreadable',
        problems: [
          {
            severity: 'error',
            file: 'typo.yaml',
            index: 0,
            line: 3,
            message:
              'YAML error: duplicate key "name" at line 3, column 3 (first at line 2); keys of a mapping must be unique',
          },
        ],
      },
    ])
  })

  it('stops a billion-laughs document at the alias limit instead of expanding it', async () => {
    let text = 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n'
    for (let i = 1; i < 10; i++)
      text += `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`
    await write({ 'lol.yaml': `ok: 1\n---\n${text}` })
    const [change] = (await readManifests(dir)).changes
    expect(change).toEqual({
      file: 'lol.yaml',
      status: 'loaded',
      documents: [{ index: 0, line: 1, value: { ok: 1 } }],
      problems: [
        {
          severity: 'error',
          file: 'lol.yaml',
          index: 1,
          line: 3,
          message:
            'YAML error: the document expands aliases (*name) more than 100 times, which looks like a resource exhaustion ("billion laughs") attack; it was skipped',
        },
      ],
    })
  })

  it('does not read a file over the size limit and still loads the others', async () => {
    await write({ 'big.yaml': Buffer.alloc(10 * 1024 * 1024, 'a'), 'ok.yaml': 'n: 1' })
    expect(await readManifests(dir)).toEqual({
      changes: [
        {
          file: 'big.yaml',
          status: 'unreadable',
          problems: [
            {
              severity: 'error',
              file: 'big.yaml',
              message:
                'file is 10 MiB, over the 3 MiB limit for one manifest file (the Kubernetes API server rejects larger requests too); split it into several smaller files',
            },
          ],
        },
        loaded('ok.yaml', { n: 1 }),
      ],
      folderProblems: [],
    })
  })
})

describe('symbolic links', () => {
  it('follows links to files and folders, and reports a folder loop once without hanging', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'ark-outside-'))
    try {
      await writeFile(path.join(outside, 'o.yaml'), 'n: outside')
      await write({ 'top.yaml': 'n: top', 'a/x.yaml': 'n: x' })
      await symlink('..', path.join(dir, 'a', 'loop'))
      await symlink(outside, path.join(dir, 'linked'))
      await symlink('top.yaml', path.join(dir, 'alias.yaml'))
      await symlink('self.yaml', path.join(dir, 'self.yaml'))
      expect(await readManifests(dir)).toEqual({
        changes: [
          loaded('a/x.yaml', { n: 'x' }),
          loaded('alias.yaml', { n: 'top' }),
          loaded('linked/o.yaml', { n: 'outside' }),
          loaded('top.yaml', { n: 'top' }),
        ],
        folderProblems: [
          {
            severity: 'warning',
            file: 'a/loop',
            message: 'symbolic link loop: it points to a folder that contains it; skipped',
          },
          {
            severity: 'warning',
            file: 'self.yaml',
            message: 'symbolic link loop: the link resolves to itself; skipped',
          },
        ],
      })
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
  })

  it('warns about a broken link and skips it', async () => {
    await write({ 'ok.yaml': 'n: 1' })
    await symlink('missing.yaml', path.join(dir, 'gone.yaml'))
    expect(await readManifests(dir)).toEqual({
      changes: [loaded('ok.yaml', { n: 1 })],
      folderProblems: [
        {
          severity: 'warning',
          file: 'gone.yaml',
          message: 'broken symbolic link: its target "missing.yaml" does not exist; skipped',
        },
      ],
    })
  })
})

describe('special files', () => {
  const mkfifo = (name: string) => promisify(execFile)('mkfifo', [path.join(dir, name)])

  it('never opens a FIFO, a socket or a device named like a manifest, and says what it is', async () => {
    await write({ 'ok.yaml': 'n: 1' })
    // Opened, a FIFO without a writer would block the read, and the scan, for good.
    await mkfifo('pipe.yaml')
    // Not named like a manifest: ignored, as a readme.txt is.
    await mkfifo('pipe.txt')
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'socket.yml'), resolve))
    await symlink('/dev/null', path.join(dir, 'null.yaml'))
    try {
      expect(await readManifests(dir)).toEqual({
        changes: [loaded('ok.yaml', { n: 1 })],
        folderProblems: [
          {
            severity: 'warning',
            file: 'null.yaml',
            message: 'symbolic link to a character device, not to a regular file; skipped',
          },
          {
            severity: 'warning',
            file: 'pipe.yaml',
            message: 'a FIFO (named pipe), not a regular file; skipped',
          },
          { severity: 'warning', file: 'socket.yml', message: 'a socket, not a regular file; skipped' },
        ],
      })
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('reports a FIFO given as the root', async () => {
    await mkfifo('pipe.yaml')
    const root = path.join(dir, 'pipe.yaml')
    expect(await readManifests(root)).toEqual({
      changes: [],
      folderProblems: [
        { severity: 'error', file: root, message: 'a FIFO (named pipe), not a regular file or folder' },
      ],
    })
  })
})

describe('changes', () => {
  it('delivers a first batch even for an empty folder, then only what changed', async () => {
    const { source, batches } = await startSource()
    expect(batches).toEqual([{ changes: [], folderProblems: [] }])

    await write({ 'a.yaml': 'n: 1' })
    await source.rescan()
    expect(batches.slice(1)).toEqual([{ changes: [loaded('a.yaml', { n: 1 })], folderProblems: [] }])

    // Same size, possibly the same mtime tick: the content still decides.
    await write({ 'a.yaml': 'n: 2' })
    await source.rescan()
    expect(batches.slice(2)).toEqual([{ changes: [loaded('a.yaml', { n: 2 })], folderProblems: [] }])

    await write({ 'a.yaml': 'n: 2' })
    await source.rescan()
    await source.rescan()
    expect(batches).toHaveLength(3)

    await unlink(path.join(dir, 'a.yaml'))
    await source.rescan()
    expect(batches.slice(3)).toEqual([
      { changes: [{ file: 'a.yaml', status: 'removed' }], folderProblems: [] },
    ])
  })

  it('sees a same-size rewrite that kept the same mtime (a racily clean stamp)', async () => {
    const file = path.join(dir, 'a.yaml')
    // In the future, so that it is recent whatever the speed of the machine; whole seconds survive utimes.
    const tick = Math.floor(Date.now() / 1000) + 60
    await write({ 'a.yaml': 'n: 1' })
    await utimes(file, tick, tick)
    const { source, batches } = await startSource()
    await write({ 'a.yaml': 'n: 2' })
    await utimes(file, tick, tick)
    await source.rescan()
    expect(batches.slice(1)).toEqual([{ changes: [loaded('a.yaml', { n: 2 })], folderProblems: [] }])
  })

  it('never runs scans side by side', async () => {
    const { source, batches } = await startSource()
    await write({ 'a.yaml': 'n: 1', 'b.yaml': 'n: 2' })
    await Promise.all([source.rescan(), source.rescan(), source.rescan()])
    expect(batches.slice(1)).toEqual([
      { changes: [loaded('a.yaml', { n: 1 }), loaded('b.yaml', { n: 2 })], folderProblems: [] },
    ])
  })

  it('delivers folder problems only when they change', async () => {
    await symlink('missing.yaml', path.join(dir, 'gone.yaml'))
    const { source, batches } = await startSource()
    expect(batches.map((b) => b.folderProblems.map((p) => p.file))).toEqual([['gone.yaml']])
    await source.rescan()
    expect(batches).toHaveLength(1)
    await unlink(path.join(dir, 'gone.yaml'))
    await source.rescan()
    expect(batches.slice(1)).toEqual([{ changes: [], folderProblems: [] }])
  })

  it('coalesces a burst of writes into one batch with the final content', async () => {
    await write({ 'burst.yaml': 'n: start' })
    const { source, batches } = await startSource()
    for (let i = 0; i < 20; i++) await write({ 'burst.yaml': `n: ${i}` })
    await source.rescan()
    expect(batches.slice(1)).toEqual([{ changes: [loaded('burst.yaml', { n: 19 })], folderProblems: [] }])
  })

  it('survives files and folders vanishing in the middle of scans', async () => {
    await write({ 'race.yaml': 'n: first' })
    const { source, batches, errors } = await startSource()
    const scans: Promise<void>[] = []
    for (let i = 0; i < 30; i++) {
      await write({ 'race.yaml': `n: ${i}`, [`d${i}/x.yaml`]: 'n: x' })
      // Started, not awaited: the deletions below land while this scan lists and reads.
      scans.push(source.rescan())
      await unlink(path.join(dir, 'race.yaml'))
      await rm(path.join(dir, `d${i}`), { recursive: true })
    }
    await Promise.all(scans)
    await source.rescan()
    expect(errors).toEqual([])
    expect(view(batches)).toEqual(new Map())
    const raceChanges = batches.flatMap((b) => b.changes).filter((c) => c.file === 'race.yaml')
    expect(raceChanges.at(-1)).toEqual({ file: 'race.yaml', status: 'removed' })
  })

  it('reports the root disappearing as every file removed, and loads it again when it is back', async () => {
    await write({ 'a.yaml': 'n: 1' })
    const { source, batches } = await startSource()
    await rm(dir, { recursive: true })
    await source.rescan()
    expect(batches.slice(1)).toEqual([
      {
        changes: [{ file: 'a.yaml', status: 'removed' }],
        folderProblems: [{ severity: 'error', file: dir, message: 'no such file or folder' }],
      },
    ])
    await write({ 'a.yaml': 'n: 2' })
    await source.rescan()
    expect(batches.slice(2)).toEqual([{ changes: [loaded('a.yaml', { n: 2 })], folderProblems: [] }])
  })

  it('keeps going when a listener throws', async () => {
    const errors: unknown[] = []
    const seen: SourceBatch[] = []
    const source = folderSource(dir, { watch: false, onError: (err) => errors.push(err) })
    opened.push(source)
    await source.start((batch) => {
      seen.push(batch)
      throw new Error('listener bug')
    })
    await write({ 'a.yaml': 'n: 1' })
    await source.rescan()
    expect(seen.map((b) => b.changes.length)).toEqual([0, 1])
    expect(errors.map((e) => (e instanceof Error ? e.message : e))).toEqual(['listener bug', 'listener bug'])
  })
})

describe('watching', () => {
  it('follows adds, edits, new folders, deletes and the root being recreated through fs events alone', async () => {
    const { source, batches, errors } = await startSource({ pollIntervalMs: 0, debounceMs: 20 })
    const state = () => view(batches)

    await write({ 'a.yaml': 'n: 1' })
    await waitFor('a.yaml loaded', () => valuesOf(state().get('a.yaml')) !== undefined)
    expect(valuesOf(state().get('a.yaml'))).toEqual([{ n: 1 }])

    await write({ 'a.yaml': 'n: 2\n---\nm: 3' })
    await waitFor(
      'a.yaml edited',
      () => JSON.stringify(valuesOf(state().get('a.yaml'))) === '[{"n":2},{"m":3}]',
    )

    await write({ 'new/deeper/b.yaml': 'n: b' })
    await waitFor('new/deeper/b.yaml loaded', () => state().has('new/deeper/b.yaml'))
    await write({ 'new/deeper/b.yaml': 'n: b2' })
    await waitFor(
      'new/deeper/b.yaml edited',
      () => JSON.stringify(valuesOf(state().get('new/deeper/b.yaml'))) === '[{"n":"b2"}]',
    )

    await unlink(path.join(dir, 'a.yaml'))
    await waitFor('a.yaml removed', () => !state().has('a.yaml'))
    expect([...state().keys()]).toEqual(['new/deeper/b.yaml'])

    // The root's watcher dies with it; the next scan (here a rescan, else the poll) watches the new one.
    await rm(dir, { recursive: true })
    await waitFor('root gone', () => state().size === 0 && batches.at(-1)?.folderProblems.length === 1)
    await mkdir(dir)
    await source.rescan()
    await write({ 'back.yaml': 'n: back' })
    await waitFor('back.yaml loaded', () => state().has('back.yaml'))
    expect(batches.at(-1)?.folderProblems).toEqual([])
    expect(errors).toEqual([])
  })
})

describe('close', () => {
  it('delivers nothing after close() resolved', async () => {
    const { source, batches } = await startSource({ pollIntervalMs: 10, debounceMs: 0 })
    await write({ 'late.yaml': 'n: late' })
    // A scan under way when close() is called finishes without delivering.
    const underway = source.rescan()
    await source.close()
    await underway
    await write({ 'later.yaml': 'n: later' })
    await source.rescan()
    // Several poll periods and fs events' worth of time for a leak to show.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(batches).toEqual([{ changes: [], folderProblems: [] }])
  })

  it('lets the process exit once closed, the parse worker included', async () => {
    // b.yaml is large enough to be parsed in the worker.
    await write({ 'a.yaml': 'n: 1', 'b.yaml': `n: "${'x'.repeat(64 * 1024)}"` })
    const moduleUrl = pathToFileURL(path.join(import.meta.dirname, 'folder.ts')).href
    const script = `
      import { folderSource } from ${JSON.stringify(moduleUrl)}
      const source = folderSource(${JSON.stringify(dir)})
      await source.start((batch) => console.log(batch.changes.map((c) => c.file).join(',')))
      await source.close()
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const timer = setTimeout(() => child.kill(), 10_000)
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    clearTimeout(timer)
    expect({ code, output }).toEqual({ code: 0, output: 'a.yaml,b.yaml\n' })
  })
})
