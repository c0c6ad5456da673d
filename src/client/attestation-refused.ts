import type { CheckResult } from '../verifier/index.js';

/** What to do when the first attestation failed, by its failed check, in the client's option names. */
const HINTS: Record<string, string> = {
  'report.fetch': 'is a teeml-sidecar serving at `provider`? (base URL, with or without /v1)',
  'report.simulated': 'a simulated provider (development only): pass allowSimulated: true to accept it',
  'tdx.quote':
    'a simulated quote needs allowSimulated: true; a TCB status other than UpToDate, the policy (acceptTcb)',
  'e2ee.required': 'the provider offers no E2EE for its key: pass e2ee: false to send prompts in the clear',
};

/**
 * `createVerifiedFetch` rejects with this when the provider's first attestation fails: `check` is the
 * failed check's id (docs/verifier-api.md lists them), `reason` its detail, `hint` what to do where
 * one is known. Nothing was sent to the provider but the attestation request.
 */
export class AttestationRefusedError extends Error {
  override readonly name = 'AttestationRefusedError';
  readonly hint: string | undefined;

  constructor(
    readonly check: string,
    readonly reason: string,
    readonly checks: readonly CheckResult[],
  ) {
    const hint = HINTS[check];
    super(`the provider did not attest: ${check}: ${reason}${hint === undefined ? '' : ` (hint: ${hint})`}`);
    this.hint = hint;
  }
}
