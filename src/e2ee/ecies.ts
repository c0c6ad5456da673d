import { createCipheriv, createDecipheriv, createECDH, hkdfSync, randomBytes } from 'node:crypto';
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
  seal(plaintext: Uint8Array, recipient: Uint8Array): Uint8Array {
    const ephemeral = createECDH('secp256k1');
    const ephemeralPoint = ephemeral.generateKeys();
    const key = aesKeyOf(ephemeral.computeSecret(recipient));
    const nonce = randomBytes(NONCE);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    key.fill(0);
    return Buffer.concat([ephemeralPoint, nonce, body]);
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
