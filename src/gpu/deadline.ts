import { SidecarError } from '../errors/index.js';

/**
 * Runs `work` with a deadline and the caller's abort signal. On either, the returned promise
 * rejects with a 503 SidecarError at once; `work` gets an AbortSignal so that cancellable I/O
 * (fetch) stops too. Uses setTimeout (not AbortSignal.timeout) so tests drive it with fake timers.
 */
export const withDeadline = async <T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> => {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    const abortWith = (error: SidecarError) => {
      controller.abort(error);
      reject(error);
    };
    timer = setTimeout(
      () =>
        abortWith(
          new SidecarError(`${what} timed out after ${timeoutMs} ms`, {
            status: 503,
            code: 'gpu_evidence_timeout',
          }),
        ),
      timeoutMs,
    );
    onAbort = () =>
      abortWith(new SidecarError(`${what} was aborted`, { status: 503, code: 'gpu_evidence_aborted' }));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work(controller.signal), stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
};
