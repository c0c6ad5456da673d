export type { ChainOptions, ChainResult } from './cert-chain.js';
export {
  GPU_CERT_CHAIN_LENGTH,
  NVIDIA_DEVICE_IDENTITY_CA_SHA256,
  sha256Fingerprint,
  splitPemChain,
  verifyCertificateChain,
} from './cert-chain.js';
export type { MeasurementBlock, OpaqueField, ParsedGpuEvidence } from './evidence.js';
export {
  EVIDENCE_NONCE_LENGTH,
  EVIDENCE_NONCE_OFFSET,
  EVIDENCE_SIGNATURE_LENGTH,
  parseGpuEvidence,
  SPDM_REQUEST_LENGTH,
} from './evidence.js';
export type { EvidenceDocument } from './evidence-document.js';
export { parseEvidenceDocument } from './evidence-document.js';
export type { FixtureGpuEvidenceOptions } from './fixture.js';
export { FixtureGpuEvidenceProvider } from './fixture.js';
export type {
  ConfComputeState,
  GpuArch,
  GpuEvidence,
  GpuEvidenceProvider,
  GpuEvidenceResult,
} from './gpu-evidence-provider.js';
export type { HttpGpuEvidenceOptions } from './http.js';
export { HttpGpuEvidenceProvider } from './http.js';
export type { LocalCheckName, LocalCheckOptions, LocalCheckResult } from './local-check.js';
export { assertGpuEvidence, checkGpuEvidence, KNOWN_SAMPLE_NONCES } from './local-check.js';
export { NoGpuEvidenceProvider } from './none.js';
export type {
  CheckMap,
  NrasAnswer,
  NrasOptions,
  NrasVerification,
  NrasVerifyOptions,
} from './nras.js';
export { fetchNrasJwks, NRAS_BASE_URL, NRAS_ISSUER, submitToNras, verifyNrasResult } from './nras.js';
export type { NvmlGpuEvidenceOptions } from './nvml.js';
export { DEFAULT_NVML_LIBRARY_PATH, NvmlGpuEvidenceProvider, readConfComputeState } from './nvml.js';
export type { NvmlBindings } from './nvml-bindings.js';
export { loadNvml, NVML_LAYOUT, nvmlString, nvmlU32 } from './nvml-bindings.js';
export type { NvidiaPayload } from './payload.js';
export { buildNvidiaPayload, parseNvidiaPayload } from './payload.js';
export type { NrasSelfCheckOptions, NrasSelfCheckResult } from './self-check.js';
export { nrasSelfCheck } from './self-check.js';
export type { SimulatedGpuEvidenceOptions } from './simulated.js';
export { SimulatedGpuEvidenceProvider } from './simulated.js';
export { synthesizeGpuEvidence } from './synthetic-evidence.js';
export type { SyntheticGpuFixtures } from './synthetic-fixtures.js';
export { loadSyntheticGpuFixtures, SYNTHETIC_GPU_FIXTURE_DIR } from './synthetic-fixtures.js';
