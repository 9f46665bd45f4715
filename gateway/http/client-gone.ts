/**
 * A run's own cancellation, which follows its client: aborted when the client goes away (the request's
 * signal), and by whoever holds it (a stream that stalls, a key revoked). `cleanup` stops following the
 * request once the run is over, so that a kept-alive connection does not collect listeners.
 */
export interface Cancellation {
  readonly cancel: AbortController
  readonly cleanup: () => void
}

export function followClient(request: Request): Cancellation {
  const cancel = new AbortController()
  const gone = request.signal
  const onGone = () => cancel.abort(new DOMException('the client disconnected', 'AbortError'))
  if (gone.aborted) onGone()
  else gone.addEventListener('abort', onGone, { once: true })
  return { cancel, cleanup: () => gone.removeEventListener('abort', onGone) }
}
