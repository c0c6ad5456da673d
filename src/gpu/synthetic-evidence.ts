import { type KeyObject, sign } from 'node:crypto';
import {
  EVIDENCE_NONCE_LENGTH,
  EVIDENCE_NONCE_OFFSET,
  EVIDENCE_SIGNATURE_LENGTH,
  parseGpuEvidence,
} from './evidence.js';

/**
 * Synthetic GPU evidence for simulated mode and tests: a template report with the real SPDM layout
 * (attestation-fixtures/gpu/README.md) gets a new requester nonce at [4, 36) and, optionally, a new
 * responder nonce, and is re-signed (ECDSA P-384 r‖s over SHA-384 of all bytes before the
 * signature, as a GPU signs it: docs/platforms.md) with the throwaway test leaf key. The result passes the
 * local check only against the synthetic root, never against NVIDIA's.
 */
export const synthesizeGpuEvidence = (
  template: Uint8Array,
  leafKey: KeyObject,
  nonce: Uint8Array,
  responderNonce?: Uint8Array,
): Uint8Array => {
  if (nonce.length !== EVIDENCE_NONCE_LENGTH) throw new TypeError('"nonce" expected 32 bytes');
  const parsed = parseGpuEvidence(template);
  const out = new Uint8Array(template.length);
  out.set(template);
  out.set(nonce, EVIDENCE_NONCE_OFFSET);
  if (responderNonce !== undefined) {
    if (responderNonce.length !== EVIDENCE_NONCE_LENGTH) {
      throw new TypeError('"responderNonce" expected 32 bytes');
    }
    out.set(responderNonce, parsed.responderNonceOffset);
  }
  const signedLength = out.length - EVIDENCE_SIGNATURE_LENGTH;
  const signature = sign('sha384', out.subarray(0, signedLength), {
    key: leafKey,
    dsaEncoding: 'ieee-p1363',
  });
  out.set(signature, signedLength);
  return out;
};
