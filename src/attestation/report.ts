import { toHex } from '../bytes/index.js';
import type { GpuEvidenceResult } from '../gpu/gpu-evidence-provider.js';
import type { Signer, SigningAlgo } from '../keys/index.js';
import type { QuoteResult, ReportDataScheme, TeePlatform } from '../tdx/quote-provider.js';

/** The fields of one attestation (docs/protocol.md, Attestation report), plus labelled extras. */
export interface Attestation {
  /** MODEL_NAME's (first) served name, first as in NEAR AI's inference-proxy; absent without MODEL_NAME. */
  model_name?: string;
  signing_address: string;
  signing_algo: SigningAlgo;
  signing_public_key: string;
  request_nonce: string;
  intel_quote: string;
  /** A JSON string; "" when the deployment has no GPU (`gpu.provider` = none). */
  nvidia_payload: string;
  event_log: unknown[];
  info: Record<string, unknown>;
  /** Extras (allowed by the contract): how to read the quote. */
  platform: TeePlatform;
  report_data: string;
  report_data_scheme: ReportDataScheme;
  simulated: boolean;
  gpu: {
    provider: string;
    count: number;
    simulated: boolean;
    cc_state: GpuEvidenceResult['ccState'];
  };
  /** Present only on simulated reports: a verifier must reject them. */
  warning?: string;
  [extra: string]: unknown;
}

/**
 * The report: the flat fields (0G SDK, NEAR's model proxies), plus NEAR AI's cloud envelope, where
 * clients look for the model key (`model_attestations[].signing_public_key`, their E2EE client) and
 * start verifying (`gateway_attestation`, their model verifier). In one CVM the sidecar is both the
 * gateway and the model's attested proxy, so all of them are this same attestation.
 */
export interface AttestationReport extends Attestation {
  all_attestations: Attestation[];
  model_attestations: Attestation[];
  gateway_attestation: Attestation;
}

/**
 * Wraps one attestation in the report's envelope (flat fields + NEAR's cloud envelope). With several
 * served names (MODEL_NAME=a,b), `model_attestations` has one entry per name, each naming its model
 * in `model_name` as NEAR's cloud-api lists one attestation per model; the flat fields name the first.
 */
export const envelopeOf = (
  attestation: Attestation,
  modelNames: readonly string[] = [],
): AttestationReport => ({
  ...attestation,
  all_attestations: [attestation],
  model_attestations:
    modelNames.length > 1 ? modelNames.map((name) => ({ ...attestation, model_name: name })) : [attestation],
  gateway_attestation: attestation,
});

export const SIMULATED_WARNING =
  'SIMULATED ATTESTATION: no TEE and/or no GPU evidence backs this report. It proves nothing; verifiers must reject it.';

export const buildAttestation = (input: {
  signer: Signer;
  nonce: Uint8Array;
  reportData: Uint8Array;
  quote: QuoteResult;
  platform: TeePlatform;
  quoteSimulated: boolean;
  gpu: GpuEvidenceResult;
  gpuProvider: string;
  nvidiaPayload: string;
  /** The served model name the report names (MODEL_NAME's first); absent without MODEL_NAME. */
  modelName?: string | undefined;
}): Attestation => {
  const simulated = input.quoteSimulated || input.gpu.simulated;
  const attestation: Attestation = {
    ...(input.modelName === undefined ? {} : { model_name: input.modelName }),
    signing_address: input.signer.address,
    signing_algo: input.signer.algo,
    signing_public_key: input.signer.publicKey,
    request_nonce: toHex(input.nonce),
    intel_quote: toHex(input.quote.quote),
    nvidia_payload: input.nvidiaPayload,
    event_log: input.quote.eventLog,
    info: input.quote.info,
    platform: input.platform,
    report_data: toHex(input.reportData),
    report_data_scheme: input.quote.reportDataScheme,
    simulated,
    gpu: {
      provider: input.gpuProvider,
      count: input.gpu.gpus.length,
      simulated: input.gpu.simulated,
      cc_state: input.gpu.ccState,
    },
    ...(input.quote.extra ?? {}),
  };
  if (simulated) attestation.warning = SIMULATED_WARNING;
  return attestation;
};
