/** Resolves to 'stuck' after `ms` unless `work` settles first: "promptly" without timing anything tightly. */
export async function within<T>(work: Promise<T>, ms = 2000): Promise<T | 'stuck'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), ms)))
  try {
    return await Promise.race([work, stuck])
  } finally {
    clearTimeout(timer)
  }
}
