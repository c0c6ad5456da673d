// The public surface of src/verifier (docs/architecture.md, code habit 1): re-exports only. test/exports.test.ts pins the list.
// SigningAlgo is the keys' own type, re-exported for library users of the verifier.
export type { SigningAlgo } from '../keys/index.js';
export { CheckList } from './check-list.js';
export { fetchFailure, notASidecar } from './fetch-failure.js';
export type { AttestedSigner, SimulationFacts } from './report-checks.js';
export type { AttestationView } from './report-shape.js';
export { attestationSchema, parseAttestation, selectAttestation } from './report-shape.js';
export type { TrailerSignature } from './signature-from-trailer.js';
export { signatureFromTrailer } from './signature-from-trailer.js';
export type { SignedBytesInput } from './signed-bytes.js';
export { checkSignedBytes } from './signed-bytes.js';
export { responseIdOf } from './signed-exchange.js';
export { simulatedQuoteMarkers } from './simulated-markers.js';
export { DEFAULT_ACCEPTED_TCB, TCB_STATUSES } from './tdx-checks.js';
export { fetchKeepingTrailers, streamingFetchKeepingTrailers, trailersOf } from './trailer-fetch.js';
export type {
  CheckResult,
  CheckStatus,
  MeasurementAllowLists,
  ReportContext,
  VerificationResult,
} from './types.js';
export type { VerifyProviderOptions } from './verify-provider.js';
export { apiRoot, checkTlsFingerprint, verifyProvider } from './verify-provider.js';
export type { ReportFacts } from './verify-report.js';
export { normalizeNonce, verifyReport } from './verify-report.js';
export { recoverEip191Address, verifySignedText } from './verify-signed-text.js';
export {
  BROKER_QUOTE_NOT_FRESH,
  ZG_BROKER_REPORT_DATA_SCHEME,
} from './zg-broker-checks.js';
