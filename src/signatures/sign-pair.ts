import type { Signers } from '../keys/index.js';
import type { SignatureRecord } from './signature-store.js';
import { signedText } from './signed-text.js';

/**
 * Signs `request hash : response hash` (or `model : request hash : response hash` when a model is
 * given) with both algorithms (docs/protocol.md, Signed text).
 */
export const signPair = (
  signers: Signers,
  requestHash: string,
  responseHash: string,
  model?: string,
): SignatureRecord => {
  const text = signedText(requestHash, responseHash, model);
  return {
    text,
    ecdsa: { signature: signers.ecdsa.sign(text), address: signers.ecdsa.address },
    ed25519: { signature: signers.ed25519.sign(text), address: signers.ed25519.address },
  };
};
