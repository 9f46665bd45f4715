/**
 * A module (or anything else) loaded on first use, once: every caller until it lands shares the one load.
 * A load that fails is not kept: the next caller tries again (a broken install may be mended, an import
 * that raced a deploy may succeed), and each caller of a failed load sees its error.
 */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined
      throw err
    })
    return loading
  }
}
