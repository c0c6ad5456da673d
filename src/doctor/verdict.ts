import type { CheckResult } from './check.js';

/**
 * The doctor's overall verdict (docs/protocol.md, `teeml-sidecar doctor`):
 * - `ready`: nothing failed; this machine can serve reports a verifier accepts.
 * - `development`: the simulated TEE is configured on a machine without a TEE, and only the TEE and
 *   GPU checks failed (and the upstream one, with the built-in demo upstream): fine for development
 *   (the sidecar runs; every verifier rejects its reports unless told --allow-simulated).
 * - `not-ready`: something else failed.
 */
export type DoctorVerdict = 'ready' | 'development' | 'not-ready';

export interface Verdict {
  verdict: DoctorVerdict;
  /** One line for a person: what the verdict means here and what to do. */
  summary: string;
}

/** How serve would run with this configuration. */
export interface VerdictSetup {
  /** TEE_PROVIDER=simulated (the default), or auto with TEE_AUTO_ALLOW_SIMULATED. */
  simulated: boolean;
  /** UPSTREAM_URL unset: the built-in demo upstream answers. */
  demoUpstream: boolean;
}

export const verdictOf = (results: readonly CheckResult[], setup: VerdictSetup): Verdict => {
  const failed = results.filter((r) => r.status === 'fail');
  if (failed.length === 0)
    return { verdict: 'ready', summary: 'nothing failed: this machine can serve attested, signed answers' };
  const noTee = results.some((r) => r.id === 'tee.present' && r.status === 'fail');
  const expected = (id: string): boolean =>
    id.startsWith('tee.') || id.startsWith('gpu.') || (setup.demoUpstream && id === 'wiring.upstream');
  const onlyHardware = failed.every((r) => expected(r.id));
  const simulated = setup.simulated;
  if (noTee && onlyHardware && simulated) {
    return {
      verdict: 'development',
      summary:
        'no TEE on this machine: simulated mode (TEE_PROVIDER=simulated, the default) is fine for development' +
        `${setup.demoUpstream ? ' (with the demo upstream; set UPSTREAM_URL for vLLM)' : ''}; ` +
        'verifiers reject its reports unless told --allow-simulated, so production needs a TDX CVM',
    };
  }
  const ids = failed.map((r) => r.id).join(', ');
  return {
    verdict: 'not-ready',
    summary:
      noTee && onlyHardware
        ? `${ids} failed; no TEE on this machine: for development, run with TEE_PROVIDER=simulated (the default)`
        : `${ids} failed (fix every FAIL above)`,
  };
};
