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
  /**
   * A sealer to `recipient` (the scheme's own key form: SEC1 secp256k1 point or X25519 key): one
   * ephemeral key pair and one key agreement, then every message sealed under a fresh random nonce.
   * Each output is a complete, independent payload in the wire format (it carries the ephemeral
   * public key), so a receiver opens each field on its own, exactly as with a fresh ephemeral key per
   * field; the sender saves the two scalar multiplications that dominated the cost of every SSE
   * chunk. Random nonces keep this safe: 96-bit for AES-GCM (NIST SP 800-38D 8.3 bounds a key to
   * 2^32 random-nonce messages; a sealer serves one answer), 192-bit for XSalsa20 and XChaCha20.
   */
  sealTo(recipient: Uint8Array): (plaintext: Uint8Array) => Uint8Array;
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
