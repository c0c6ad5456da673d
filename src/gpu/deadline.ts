import { runWithDeadline } from '../concurrency/index.js';
import { unavailable } from '../errors/index.js';

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
    timeoutError: () => unavailable(`${what} timed out after ${timeoutMs} ms`, 'gpu_evidence_timeout'),
    abortError: () => unavailable(`${what} was aborted`, 'gpu_evidence_aborted'),
  });
