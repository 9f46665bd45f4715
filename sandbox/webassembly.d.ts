/**
 * The WebAssembly JS API, which Node and Deno both provide but TypeScript declares only in its DOM library
 * (not loaded here: the gateway and sandbox are not browser code). Only what ark uses.
 */
declare namespace WebAssembly {
  type ImportExportKind = 'function' | 'table' | 'memory' | 'global' | 'tag'
  interface ModuleImportDescriptor {
    readonly module: string
    readonly name: string
    readonly kind: ImportExportKind
  }
  interface ModuleExportDescriptor {
    readonly name: string
    readonly kind: ImportExportKind
  }
  // eslint-disable-next-line @typescript-eslint/no-extraneous-class -- the API's shape, declared
  class Module {
    constructor(bytes: BufferSource)
    static imports(module: Module): ModuleImportDescriptor[]
    static exports(module: Module): ModuleExportDescriptor[]
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>)
    readonly exports: Record<string, unknown>
  }
  interface MemoryDescriptor {
    initial: number
    maximum?: number
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor)
    readonly buffer: ArrayBuffer
    grow(delta: number): number
  }
  class CompileError extends Error {}
  class LinkError extends Error {}
  class RuntimeError extends Error {}
  function compile(bytes: BufferSource): Promise<Module>
  function validate(bytes: BufferSource): boolean
  function instantiate(module: Module, imports?: Record<string, Record<string, unknown>>): Promise<Instance>
  function instantiate(
    bytes: BufferSource,
    imports?: Record<string, Record<string, unknown>>,
  ): Promise<{ module: Module; instance: Instance }>
}

type BufferSource = ArrayBufferView | ArrayBuffer
