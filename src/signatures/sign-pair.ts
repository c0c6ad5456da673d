import type { Signers } from '../keys/index.js';
import type { SignatureRecord } from './signature-store.js';
import { signedText } from './signed-text.js';

/**
 * Signs `request hash : response hash` with both algorithms (docs/protocol.md, Signed text). The text is
 * exactly two 64-char lowercase hex digests joined by ':'.
 */
export const signPair = (signers: Signers, requestHash: string, responseHash: string): SignatureRecord => {
  const text = signedText(requestHash, responseHash);
  return {
    text,
    ecdsa: { signature: signers.ecdsa.sign(text), address: signers.ecdsa.address },
    ed25519: { signature: signers.ed25519.sign(text), address: signers.ed25519.address },
  };
};
