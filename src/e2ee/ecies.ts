import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { isPrivate, pointFromScalar, pointMultiply } from 'tiny-secp256k1';
import { E2eeDecryptError, type E2eeScheme, type KeyAgreement } from './scheme.js';

const POINT = 65;
const NONCE = 12;
const TAG = 16;
/** HKDF info string of NEAR AI's ECIES (inference-proxy `src/encryption.rs`, their verifier clients). */
const INFO = 'ecdsa_encryption';

/** HKDF-SHA256 with no salt (RFC 5869 2.2: a zero-filled salt of hash length), 32-byte output. */
const aesKeyOf = (shared: Uint8Array): Buffer =>
  Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), INFO, 32));

/**
 * ECIES over secp256k1: ephemeral uncompressed point (65) ‖ AES-256-GCM nonce (12) ‖ ciphertext ‖
 * tag (16); key = HKDF-SHA256(ECDH x-coordinate, no salt, info "ecdsa_encryption").
 */
export const ecies: E2eeScheme = {
  name: 'ecies-secp256k1-aes256gcm',
  sealTo(recipient: Uint8Array): (plaintext: Uint8Array) => Uint8Array {
    // libsecp256k1 (wasm, the signer's library): the two scalar multiplications of a new sealer.
    let secret = randomBytes(32);
    while (!isPrivate(secret)) secret = randomBytes(32);
    const ephemeralPoint = pointFromScalar(secret, false);
    const shared = pointMultiply(recipient, secret, true);
    secret.fill(0);
    if (ephemeralPoint === null || shared === null)
      throw new RangeError('secp256k1 recipient key is not usable');
    const key = aesKeyOf(shared.subarray(1));
    return (plaintext) => {
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      return Buffer.concat([
        ephemeralPoint,
        nonce,
        cipher.update(plaintext),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
    };
  },
  open(payload: Uint8Array, agree: KeyAgreement): Uint8Array {
    if (payload.length < POINT + NONCE + TAG || payload[0] !== 0x04) throw new E2eeDecryptError();
    const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    let key: Buffer;
    try {
      key = aesKeyOf(agree(bytes.subarray(0, POINT)));
    } catch {
      throw new E2eeDecryptError();
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(POINT, POINT + NONCE));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG));
      return Buffer.concat([
        decipher.update(bytes.subarray(POINT + NONCE, bytes.length - TAG)),
        decipher.final(),
      ]);
    } catch {
      throw new E2eeDecryptError();
    } finally {
      key.fill(0);
    }
  },
};
