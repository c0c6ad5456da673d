// The public surface of teeml-sidecar/client (docs/client-api.md): re-exports only. test/exports.test.ts pins the list.
export type { Policy, ProviderLink, Receipt, ReceiptSink } from '../gateway/index.js';
export { fileReceiptSink, PolicyError, VERIFICATION_HEADER } from '../gateway/index.js';
export { AttestationRefusedError } from './attestation-refused.js';
export type { VerifiedFetch, VerifiedFetchOptions, VerifiedFetchStatus } from './create-verified-fetch.js';
export { createVerifiedFetch } from './create-verified-fetch.js';
