/**
 * One doctor check (docs/protocol.md, `teeml-sidecar doctor`): a named question about this machine with
 * a status, what was seen, and a one-line hint for the operator when it is not a pass.
 *
 * - `pass`: works as a production deployment needs.
 * - `warn`: works, but something an operator should know (a TCB that needs an update, an ephemeral
 *   key, a certificate close to expiry).
 * - `fail`: the sidecar would not start, or would serve reports every verifier rejects.
 * - `skip`: not configured or not asked for (no Redis, `--nras` not given), or an earlier check it
 *   depends on failed.
 */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckOutcome {
  status: CheckStatus;
  /** What the check saw, one line. Never a secret, a key or a token. */
  detail: string;
  /** What to do about it, one line; only when the status is not `pass`. */
  hint?: string;
}

export interface CheckResult extends CheckOutcome {
  /** Stable id, e.g. `tee.quote`; scripts key on it. */
  id: string;
}

export interface DoctorCheck {
  readonly id: string;
  /** This check's own deadline: a hung device or server costs at most this long. */
  readonly timeoutMs: number;
  /** The hint shown when the check runs out of time or throws. */
  readonly failHint: string;
  /**
   * Runs the check. Throwing is allowed and becomes a `fail` with the error's message; `signal`
   * aborts when the deadline passes (cancellable I/O stops; a native call cannot be stopped, and the
   * doctor goes on without it).
   */
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

export const pass = (detail: string): CheckOutcome => ({ status: 'pass', detail });
export const skip = (detail: string, hint?: string): CheckOutcome =>
  hint === undefined ? { status: 'skip', detail } : { status: 'skip', detail, hint };
export const warn = (detail: string, hint: string): CheckOutcome => ({ status: 'warn', detail, hint });
export const fail = (detail: string, hint: string): CheckOutcome => ({ status: 'fail', detail, hint });
