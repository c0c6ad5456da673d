import { runWithDeadline } from '../concurrency/index.js';
import { SidecarError } from '../errors/index.js';

/**
 * GPU evidence and NRAS calls under a deadline and the caller's abort signal: either one rejects at
 * once with a 503 SidecarError (`gpu_evidence_timeout`, `gpu_evidence_aborted`), and `work`'s
 * signal tells cancellable I/O (fetch) to stop.
 */
export const withDeadline = <T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> =>
  runWithDeadline(work, {
    timeoutMs,
    signal,
    timeoutError: () =>
      new SidecarError(`${what} timed out after ${timeoutMs} ms`, {
        status: 503,
        code: 'gpu_evidence_timeout',
      }),
    abortError: () => new SidecarError(`${what} was aborted`, { status: 503, code: 'gpu_evidence_aborted' }),
  });
