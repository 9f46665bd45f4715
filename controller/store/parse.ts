/**
 * Parsing one manifest file (multi-document YAML; JSON is YAML) into raw documents, within bounds that a
 * hostile or broken file cannot get past: the `yaml` package alone lets a few hundred kilobytes block a thread
 * for seconds, take gigabytes, or overflow the stack. Pure (no I/O), so that it runs on the calling thread
 * for small files and in the parse worker (parse-worker.ts) for large ones.
 *
 * The guard sits between the lexer and the parser: the yaml package's lexer and CST parser are iterative and
 * cheap, its CST, composer and toJS are where memory and recursion go. Counting lexical tokens as they
 * stream lets a file be refused before its CST is built, and the CST parser's stack gives the nesting depth
 * at every step, so that the recursive composer never sees a document deeper than MAX_DEPTH.
 */
import {
  Composer,
  CST,
  Lexer,
  LineCounter,
  Parser,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Document,
  type YAMLError,
} from 'yaml'
import type { Problem } from '../api/problems.ts'
import type { FileState, RawDocument } from './source.ts'

/**
 * Limits for one manifest file, each far above what real manifests need. For scale: ark's largest generated
 * CRD (Model, 86 KB) has about 11,000 tokens, 3,000 nodes and a nesting depth of 23; an ark resource has a
 * few dozen nodes and a depth under 10.
 */
export const LIMITS = {
  /**
   * Nodes: scalars (keys included), aliases, flow collections and block entries (`-`, `?`). 100,000 is
   * some 30 large CRDs in one file. The yaml package's CST takes about 900 bytes per node, so a file full
   * of them (a 2 MB `[1,1,1,...]` has a million) would otherwise cost gigabytes.
   */
  maxNodes: 100_000,
  /**
   * Lexical tokens, comments, line breaks and indentation included: 4 to 5 per node in real files, so about
   * as far as maxNodes. This bounds files that are large without having nodes (3 million empty lines,
   * `{:,:,:}`), whose CST costs as much: at this limit up to about 150 MB, in the parse worker.
   */
  maxTokens: 500_000,
  /**
   * Nesting depth of collections. Composing and converting recurse once (or a few times) per level, and
   * so does everything downstream that walks a document; 100 is four times the deepest CRD and far below
   * any stack limit.
   */
  maxDepth: 100,
  /**
   * Alias nodes (`*name`) per file. Resolving an alias scans every anchor and alias before it, so their
   * cost is quadratic: 20,000 anchor and alias pairs take 7 s. Real manifests use a handful.
   */
  maxAliases: 1_000,
  /**
   * Expansions of one anchor through aliases, as the yaml package counts them (its own default): enough
   * for real manifests, a "billion laughs" document fails fast.
   */
  maxAliasCount: 100,
} as const

type Limit = 'maxNodes' | 'maxTokens' | 'maxDepth' | 'maxAliases'

/** Thrown by the token guard to abandon a file; never escapes this module. */
class LimitExceeded extends Error {
  readonly limit: Limit
  readonly offset: number
  constructor(limit: Limit, offset: number) {
    super(limit)
    this.limit = limit
    this.offset = offset
  }
}

/** Lexical token types that start a node; block collections are counted through their entries. */
const NODE_TOKENS: ReadonlySet<string> = new Set([
  'scalar',
  'single-quoted-scalar',
  'double-quoted-scalar',
  'alias',
  'flow-map-start',
  'flow-seq-start',
  'seq-item-ind',
  'explicit-key-ind',
])
const COLLECTION_TOKENS: ReadonlySet<string> = new Set(['block-map', 'block-seq', 'flow-collection'])

/**
 * Parses the text of one manifest file. Documents with errors are left out and reported as problems; empty
 * documents are left out silently. Indices count every document. A file over one of the LIMITS is refused
 * as a whole: nothing of it is used, as for a file over the size limit.
 */
export function parseManifestBytes(bytes: Uint8Array, file: string): FileState {
  // Invalid UTF-8 becomes U+FFFD and a BOM is dropped; the YAML parser reports whatever that leaves.
  return parseManifestText(new TextDecoder().decode(bytes), file)
}

/** parseManifestBytes for text already decoded. */
export function parseManifestText(text: string, file: string): FileState {
  const lineCounter = new LineCounter()
  // Duplicate keys are found below with a Set per mapping: the yaml package's `uniqueKeys` compares every
  // key with every other one (40,000 keys took 17 s).
  const composer = new Composer({ uniqueKeys: false })
  const documents: RawDocument[] = []
  const problems: Problem[] = []
  let index = 0
  try {
    // Documents are handled as they are composed, so that only one at a time is held.
    for (const doc of composer.compose(guardedTokens(text, lineCounter))) {
      readDocument(doc, index++, file, lineCounter, documents, problems)
    }
  } catch (err) {
    if (!(err instanceof LimitExceeded)) return failed(file, parserFailure(err))
    // The line where the limit was reached, so that the file can be looked at there.
    const line = lineCounter.linePos(err.offset).line
    const problem: Problem = {
      severity: 'error',
      file,
      ...(line > 0 ? { line } : {}),
      message: limitMessage(err.limit),
    }
    return { file, status: 'unreadable', problems: [problem] }
  }
  // Nothing usable and something broken (typically a single-document file with a typo): the file as a whole
  // could not be read, so its consumer keeps what it last held instead of deleting its resources.
  if (documents.length === 0 && problems.length > 0) return { file, status: 'unreadable', problems }
  return { file, status: 'loaded', documents, problems }
}

/** What `Parser.parse` does, with every lexical token counted and the depth checked after each one. */
function* guardedTokens(text: string, lineCounter: LineCounter): Generator<CST.Token> {
  const parser = new Parser(lineCounter.addNewLine)
  lineCounter.addNewLine(0)
  let tokens = 0
  let nodes = 0
  let aliases = 0
  // After a scalar marker the lexer emits the scalar's source, which may look like any other token.
  let inScalar = false
  for (const lexeme of new Lexer().lex(text)) {
    if (++tokens > LIMITS.maxTokens) throw new LimitExceeded('maxTokens', parser.offset)
    if (inScalar) {
      inScalar = false
    } else {
      const type = CST.tokenType(lexeme)
      if (type !== null && NODE_TOKENS.has(type)) {
        if (++nodes > LIMITS.maxNodes) throw new LimitExceeded('maxNodes', parser.offset)
        if (type === 'scalar') inScalar = true
        else if (type === 'alias' && ++aliases > LIMITS.maxAliases)
          throw new LimitExceeded('maxAliases', parser.offset)
      }
    }
    yield* parser.next(lexeme)
    // The stack holds the document, the open collections and at most a scalar or two: only count when it
    // could be over.
    if (parser.stack.length > LIMITS.maxDepth + 1 && depthOf(parser.stack) > LIMITS.maxDepth) {
      throw new LimitExceeded('maxDepth', parser.offset)
    }
  }
  yield* parser.end()
}

function depthOf(stack: readonly CST.Token[]): number {
  let depth = 0
  for (const token of stack) if (COLLECTION_TOKENS.has(token.type)) depth++
  return depth
}

function limitMessage(limit: Limit): string {
  const n = LIMITS[limit].toLocaleString('en-US')
  switch (limit) {
    case 'maxNodes':
      return `over the limit of ${n} YAML nodes for one manifest file; split it into several smaller files`
    case 'maxTokens':
      return `over the limit of ${n} YAML tokens (comments, line breaks and indentation count) for one manifest file; split it into several smaller files`
    case 'maxDepth':
      return `collections nested deeper than the limit of ${n} levels for one manifest file; flatten the structure`
    case 'maxAliases':
      return `over the limit of ${n} aliases (*name) for one manifest file; write the values out instead`
  }
}

function readDocument(
  doc: Document.Parsed,
  index: number,
  file: string,
  lineCounter: LineCounter,
  documents: RawDocument[],
  problems: Problem[],
): void {
  // The line of the content itself, past any `---`, directives and leading comments.
  const line = lineCounter.linePos(doc.contents?.range[0] ?? doc.range[0]).line
  const [firstError, ...moreErrors] = doc.errors
  if (firstError !== undefined) {
    problems.push(yamlErrorProblem(firstError, moreErrors.length, file, index, line, lineCounter))
    return
  }
  const duplicate = findDuplicateKey(doc, lineCounter)
  if (duplicate !== undefined) {
    problems.push({ severity: 'error', file, index, line: duplicate.line, message: duplicate.message })
    return
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: LIMITS.maxAliasCount })
  } catch (err) {
    problems.push({ severity: 'error', file, index, line, message: toJsErrorMessage(err) })
    return
  }
  if (value !== null && value !== undefined) documents.push({ index, line, value })
}

function yamlErrorProblem(
  err: YAMLError,
  more: number,
  file: string,
  index: number,
  line: number,
  lineCounter: LineCounter,
): Problem {
  const at = err.pos[0] >= 0 ? lineCounter.linePos(err.pos[0]) : undefined
  // The composer catches whatever it throws, a stack overflow included; the depth limit should keep it
  // from ever happening, and a user must never be told about a call stack.
  const what = err.message.includes('Maximum call stack')
    ? `the document is nested too deeply to be read`
    : err.message
  const where = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`
  const also = more === 0 ? '' : ` (and ${more} more error${more === 1 ? '' : 's'} in this document)`
  return {
    severity: 'error',
    file,
    index,
    line: at?.line ?? line,
    message: `YAML syntax error: ${what}${where}${also}`,
  }
}

/**
 * The first key that appears twice in one mapping, in document order. Keys are compared as the object they
 * become compares them (`1` and `"1"` are one key), so that no value silently replaces another. Iterative:
 * the depth limit already holds, but a walk over a wide document should not cost stack either.
 */
function findDuplicateKey(
  doc: Document.Parsed,
  lineCounter: LineCounter,
): { line: number; message: string } | undefined {
  const pending: unknown[] = [doc.contents]
  while (pending.length > 0) {
    const node = pending.pop()
    if (isMap(node)) {
      const seen = new Map<string, number>()
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue
        const key = objectKey(pair.key.value)
        if (key === undefined) continue
        const offset = pair.key.range?.[0] ?? 0
        const first = seen.get(key)
        if (first !== undefined) {
          const at = lineCounter.linePos(offset)
          const firstLine = lineCounter.linePos(first).line
          return {
            line: at.line,
            message: `YAML error: duplicate key ${quoteKey(key)} at line ${at.line}, column ${at.col} (first at line ${firstLine}); keys of a mapping must be unique`,
          }
        }
        seen.set(key, offset)
      }
      // Reversed, so that the pops visit the document in order.
      for (let i = node.items.length - 1; i >= 0; i--) pending.push(node.items[i]?.value, node.items[i]?.key)
    } else if (isSeq(node)) {
      for (let i = node.items.length - 1; i >= 0; i--) pending.push(node.items[i])
    } else if (isPair(node)) {
      // A single-pair mapping inside a flow sequence: `[a: 1]`.
      pending.push(node.value, node.key)
    }
  }
  return undefined
}

/** The property name a scalar key becomes in the object (as the yaml package's toJS names it). */
function objectKey(value: unknown): string | undefined {
  if (value === null) return ''
  switch (typeof value) {
    case 'string':
      return value
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value)
    default:
      // Not produced by the core schema's scalars: left to the yaml package, as keys that are collections.
      return undefined
  }
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key)
}

/** A file that could not be parsed at all, for a reason outside the YAML itself. */
export function failed(file: string, message: string): FileState {
  return { file, status: 'unreadable', problems: [{ severity: 'error', file, message }] }
}

/** The yaml package threw where it reports errors as values: a bug, or a stack overflow it did not catch. */
function parserFailure(err: unknown): string {
  if (err instanceof RangeError) return 'the file is nested too deeply to be read'
  return `the YAML parser failed on this file: ${err instanceof Error ? err.message : String(err)}`
}

function toJsErrorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  if (message.includes('alias count')) {
    return `YAML error: the document expands aliases (*name) more than ${LIMITS.maxAliasCount} times, which looks like a resource exhaustion ("billion laughs") attack; it was skipped`
  }
  if (err instanceof RangeError)
    return 'YAML error: the document is nested too deeply to be read; it was skipped'
  return `YAML error: ${message}`
}
