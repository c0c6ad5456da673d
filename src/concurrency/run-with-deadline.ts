export interface DeadlineOptions {
  timeoutMs: number;
  /** The error a timeout rejects with; the work's signal is aborted with it too. */
  timeoutError: () => Error;
  /** A caller's signal: when it aborts, the promise rejects at once with `abortError()`. */
  signal?: AbortSignal | undefined;
  abortError?: () => Error;
}

/**
 * Runs `work` against a deadline (and, optionally, the caller's abort signal). Whichever comes first
 * settles the returned promise; on a timeout or abort, `work` is told to stop through the signal it
 * was given, so cancellable I/O stops too. A later rejection of `work` is swallowed on purpose: it
 * lost the race and must not become an unhandled rejection. The timer is unref'd and always cleared;
 * setTimeout (not AbortSignal.timeout) keeps it drivable by fake timers in tests.
 */
export const runWithDeadline = async <T>(
  work: (signal: AbortSignal) => Promise<T>,
  options: DeadlineOptions,
): Promise<T> => {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    const abortWith = (error: Error): void => {
      controller.abort(error);
      reject(error);
    };
    timer = setTimeout(() => abortWith(options.timeoutError()), options.timeoutMs);
    timer.unref();
    const { signal } = options;
    if (signal === undefined) return;
    onAbort = () => abortWith(options.abortError?.() ?? (signal.reason as Error));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const running = work(controller.signal);
    running.catch(() => undefined);
    return await Promise.race([running, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
  }
};
