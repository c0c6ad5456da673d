import { SidecarError } from '../errors/index.js';

/**
 * Runs `task` with an AbortSignal that fires after `ms`; rejects with 503 `attestation_timeout` when
 * the TEE or GPU does not answer in time (the providers are told to stop through the signal).
 */
export const withTimeout = async <T>(
  ms: number,
  what: string,
  task: (signal: AbortSignal) => Promise<T>,
): Promise<T> => {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new SidecarError(`${what} did not answer within ${ms} ms`, {
        status: 503,
        code: 'attestation_timeout',
      });
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([task(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
};
