export type { TappClientOptions, TappEvidenceResponse, TappSecretKey, TappTlsCert } from './client.js';
export { DEFAULT_TAPP_ENDPOINT, TAPP_PROTO_PATH, TappClient } from './client.js';
export type { TappEvidence } from './evidence.js';
export { EvidenceFormatError, parseTappEvidence, tappEvidenceSchema } from './evidence.js';
export type { RuntimeData } from './runtime-data.js';
export {
  buildRuntimeData,
  checkRuntimeData,
  RuntimeDataError,
  reportDataOfRuntimeData,
  runtimeDataSchema,
  TAPP_MAX_NONCE_BYTES,
  TAPP_REPORT_DATA_SCHEME,
} from './runtime-data.js';
