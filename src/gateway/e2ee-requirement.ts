import type { CheckResult } from '../verifier/index.js';
import { bareHex } from './bare-hex.js';

/**
 * What the attestor checks of E2EE when the gateway encrypts (mode auto, a client built in): whether
 * the report offers E2EE for the attested key, and whether that is required.
 */
export interface E2eeRequirement {
  /** `requireE2ee`: a report that offers no E2EE for the attested key fails `e2ee.required`. */
  required: boolean;
  /** Whether this report offers E2EE for the attested signer `address`. */
  offered(report: unknown, address: string): boolean;
}

/**
 * Whether a report offers E2EE to the attested key: NEAR's envelope lists the key among its
 * `model_attestations` (docs/protocol.md, Confidentiality), or an explicit `e2ee` object (the seam
 * test doubles use). An envelope that lists only other keys offers nothing to this one.
 */
export const reportOffersE2eeFor = (report: unknown, address: string): boolean => {
  if (typeof report !== 'object' || report === null) return false;
  const r = report as Record<string, unknown>;
  const models = r['model_attestations'];
  if (Array.isArray(models))
    return models.some((m) => {
      const a =
        typeof m === 'object' && m !== null ? (m as Record<string, unknown>)['signing_address'] : undefined;
      return typeof a === 'string' && bareHex(a) === bareHex(address);
    });
  return typeof r['e2ee'] === 'object' && r['e2ee'] !== null;
};

const TITLES = {
  'e2ee.required': 'the report offers E2EE for the attested key (policy requireE2ee)',
  'e2ee.downgrade': 'a key that offered E2EE still offers it',
} as const;

/**
 * The E2EE check of one attestation (issue 21, item 3). The fields that advertise E2EE are bound by
 * no quote: a man in the middle, or a 0G broker relaying the report, can strip them, and the gateway
 * would then send prompts in clear. So a key that once offered E2EE must keep offering it
 * (`e2ee.downgrade`, whatever the policy), and with `requireE2ee` a key must offer it from the start
 * (`e2ee.required`). Undefined: nothing to say (E2EE neither offered nor required).
 */
export const e2eeCheck = (input: {
  required: boolean;
  offered: boolean;
  offeredBefore: boolean;
}): CheckResult | undefined => {
  const { required, offered, offeredBefore } = input;
  if (!offered && offeredBefore)
    return {
      id: 'e2ee.downgrade',
      title: TITLES['e2ee.downgrade'],
      status: 'fail',
      detail:
        'this key offered E2EE at an earlier attestation and the report no longer does: refused rather than sending prompts in clear',
    };
  if (!offered && required)
    return {
      id: 'e2ee.required',
      title: TITLES['e2ee.required'],
      status: 'fail',
      detail:
        'the report offers no E2EE for the attested key; prompts would leave in clear (--no-e2ee or "requireE2ee": false to accept that)',
    };
  if (!offered) return undefined;
  return { id: 'e2ee.required', title: TITLES['e2ee.required'], status: 'pass', detail: 'E2EE offered' };
};
