import { runWithDeadline } from '../concurrency/index.js';
import type { CheckResult, DoctorCheck } from './check.js';
import { describeError } from './describe-error.js';

class CheckTimeout extends Error {
  override readonly name = 'CheckTimeout';
}

/**
 * Runs checks one after another (quote devices and NVML must not be driven concurrently), each under
 * its own deadline, and turns every outcome into a result: a check that throws or hangs is a `fail`,
 * never an exception out of the doctor. A native call that hangs keeps a libuv worker thread busy
 * after its deadline; the doctor does not wait for it, and tells `onTimeout` so the CLI can exit
 * without joining that thread (exit-now.ts).
 */
export const runChecks = async (
  checks: readonly DoctorCheck[],
  onTimeout?: (id: string) => void,
): Promise<CheckResult[]> => {
  const results: CheckResult[] = [];
  for (const check of checks) {
    try {
      const outcome = await runWithDeadline((signal) => check.run(signal), {
        timeoutMs: check.timeoutMs,
        timeoutError: () => new CheckTimeout(),
      });
      results.push({ id: check.id, ...outcome });
    } catch (error) {
      if (error instanceof CheckTimeout) {
        onTimeout?.(check.id);
        results.push({
          id: check.id,
          status: 'fail',
          detail: `no answer within ${check.timeoutMs} ms`,
          hint: check.failHint,
        });
      } else {
        results.push({ id: check.id, status: 'fail', detail: describeError(error), hint: check.failHint });
      }
    }
  }
  return results;
};
