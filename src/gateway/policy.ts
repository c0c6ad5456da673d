import { z } from 'zod';
import {
  type MeasurementAllowLists,
  type ReportContext,
  type SigningAlgo,
  TCB_STATUSES,
} from '../verifier/index.js';

const hexOf = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^(0x)?[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes} bytes of hex`)
    .transform((v) => v.replace(/^0x/i, '').toLowerCase());
const list = (bytes: number) => z.array(hexOf(bytes)).min(1).optional();

const TCB = z.enum(TCB_STATUSES);

/**
 * What the gateway requires of a provider before it forwards a single request (`--policy file.json`).
 * Unknown keys are refused: a misspelt `"mrdt"` must not silently mean "any MRTD".
 */
export const policySchema = z.strictObject({
  /** TCB statuses that pass `tdx.quote`; default ["UpToDate"]. */
  acceptTcb: z.array(TCB).min(1).optional(),
  mrtd: list(48),
  rtmr0: list(48),
  rtmr1: list(48),
  rtmr2: list(48),
  /** RTMR3 values; Dstack deployments usually pin composeHash and osImageHash instead. */
  rtmr3: list(48),
  /** Expected Dstack compose hash (sha256 of app-compose.json). */
  composeHash: hexOf(32).optional(),
  /** Allowed Dstack OS image hashes. */
  osImageHash: list(32),
  /** GPU evidence required (default true). */
  requireGpu: z.boolean().default(true),
  /** The attested signing address (ecdsa) or public key (ed25519) must be this one. */
  expectedSigningAddress: z
    .string()
    .regex(/^(0x)?([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/, 'expected a 0x address or a 32-byte ed25519 key')
    .optional(),
  /** Accept simulated reports (development only: they prove nothing). */
  allowSimulated: z.boolean().default(false),
  /** Algorithm the provider signs answers with; default ecdsa. */
  signingAlgo: z.enum(['ecdsa', 'ed25519']).default('ecdsa'),
  /**
   * Accept a re-attestation that shows another signing key than the first one (a provider restart
   * with an ephemeral key). Default false: a changed key fails `gateway.signer-pinned`.
   */
  allowSignerChange: z.boolean().default(false),
  /**
   * Accept a 0G broker's static quote (the layout where the broker signs in its CVM): made once at
   * broker start over its address, for no nonce of ours, so it can be replayed. The quote must
   * still bind the signer in the broker's format (`tdx.report-data.broker-address`) and pass every
   * other check; receipts and the status page say the attestation was not fresh. Default false.
   */
  acceptBrokerQuote: z.boolean().default(false),
  /**
   * A report that does not offer E2EE for the attested key fails attestation (`e2ee.required`), so
   * no prompt leaves in clear. Default: on, except in 0G mode for a provider whose broker signs (its
   * E2EE is the broker's own); ignored with --no-e2ee. A key that once offered E2EE must keep
   * offering it whatever this says (`e2ee.downgrade`).
   */
  requireE2ee: z.boolean().optional(),
  /**
   * The models the user's tools may ask for (issue 24, item 5): a request for another is refused
   * locally (400 `model_not_allowed`), and the report must name one of them (`report.model`).
   */
  models: z.array(z.string().min(1)).min(1).optional(),
  /**
   * Release stream events as they arrive even where the channel does not authenticate every byte
   * (plain http, https without the TLS binding, E2EE that does not authenticate the sender),
   * marked `X-TeeML-Verification: pending-unauthenticated`. Default false: such streams are held
   * until their signature verified (SECURITY.md, "The gateway's answer path").
   */
  releaseUnverifiedStreams: z.boolean().default(false),
  /** Do not consult NVIDIA NRAS (gpu.nras skipped). */
  offline: z.boolean().default(false),
  nrasUrl: z.url({ protocol: /^https?$/ }).optional(),
  pccsUrl: z.url({ protocol: /^https?$/ }).optional(),
});

export type Policy = z.output<typeof policySchema>;

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** Parses a policy from JSON bytes; the error names every bad field, never a value. */
export const parsePolicy = (
  bytes: Uint8Array | string,
  overrides: { allowSimulated?: boolean; acceptBrokerQuote?: boolean } = {},
): Policy => {
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes));
  } catch {
    throw new PolicyError('policy: not JSON');
  }
  const parsed = policySchema.safeParse(value);
  if (!parsed.success) {
    throw new PolicyError(
      `policy: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return {
    ...parsed.data,
    ...(overrides.allowSimulated === true ? { allowSimulated: true } : {}),
    ...(overrides.acceptBrokerQuote === true ? { acceptBrokerQuote: true } : {}),
  };
};

export const defaultPolicy = (
  overrides: { allowSimulated?: boolean; acceptBrokerQuote?: boolean } = {},
): Policy => parsePolicy('{}', overrides);

/** The verifier options a policy means (everything but the nonce and the time). */
export const reportOptionsOf = (
  policy: Policy,
  expectAddress: string | undefined,
): Omit<ReportContext, 'nonce' | 'nowSeconds'> & { signingAlgo: SigningAlgo } => {
  const allow: MeasurementAllowLists = {
    ...(policy.mrtd ? { mrtd: policy.mrtd } : {}),
    ...(policy.rtmr0 ? { rtmr0: policy.rtmr0 } : {}),
    ...(policy.rtmr1 ? { rtmr1: policy.rtmr1 } : {}),
    ...(policy.rtmr2 ? { rtmr2: policy.rtmr2 } : {}),
    ...(policy.osImageHash ? { osImageHash: policy.osImageHash } : {}),
  };
  return {
    signingAlgo: policy.signingAlgo,
    acceptTcb: policy.acceptTcb ?? ['UpToDate'],
    allowSimulated: policy.allowSimulated,
    acceptBrokerQuote: policy.acceptBrokerQuote,
    allowNoGpu: !policy.requireGpu,
    offline: policy.offline,
    allow,
    ...(policy.composeHash === undefined ? {} : { expectedComposeHash: policy.composeHash }),
    ...(expectAddress === undefined ? {} : { expectAddress }),
    ...(policy.nrasUrl === undefined ? {} : { nrasUrl: policy.nrasUrl }),
    ...(policy.pccsUrl === undefined ? {} : { pccsUrl: policy.pccsUrl }),
  };
};
