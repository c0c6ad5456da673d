/**
 * Shared-secret agreement with a local private key: the signer's `ecdh` on the server, a throwaway
 * key on the client. The key itself never passes through the ciphers.
 */
export type KeyAgreement = (peerPublicKey: Uint8Array) => Uint8Array;

/**
 * One public-key encryption of a single field value, as NEAR AI's E2EE protocol frames it:
 * `ephemeral public key ‖ nonce ‖ ciphertext with tag`, hex on the wire.
 */
export interface E2eeScheme {
  readonly name: string;
  /** Encrypts to `recipient` (the scheme's own key form: SEC1 secp256k1 point or X25519 key). */
  seal(plaintext: Uint8Array, recipient: Uint8Array): Uint8Array;
  /** Decrypts with `agree`; throws E2eeDecryptError for anything that does not authenticate. */
  open(payload: Uint8Array, agree: KeyAgreement): Uint8Array;
}

/** A payload that is malformed or does not authenticate. Deliberately carries no detail (no oracle). */
export class E2eeDecryptError extends Error {
  override readonly name = 'E2eeDecryptError';
  constructor() {
    super('ciphertext does not decrypt');
  }
}
