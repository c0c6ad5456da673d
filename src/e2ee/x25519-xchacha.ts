import { hkdfSync, randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { E2eeDecryptError, type E2eeScheme, type KeyAgreement } from './scheme.js';
import { ephemeralX25519 } from './x25519.js';

const KEY = 32;
const NONCE = 24;
const TAG = 16;
/** HKDF info of NEAR's version 2 (inference-proxy `src/encryption.rs`, module `nacl_v2`). */
const INFO = 'ed25519_encryption';

const aeadKeyOf = (shared: Uint8Array): Uint8Array =>
  new Uint8Array(hkdfSync('sha256', shared, Buffer.alloc(0), INFO, 32));

/**
 * `X-Encryption-Version: 2` for ed25519: X25519 + HKDF-SHA256(no salt, info "ed25519_encryption") +
 * XChaCha20-Poly1305 (IETF order, ciphertext ‖ tag): ephemeral public key (32) ‖ nonce (24) ‖ ct.
 */
export const x25519XChaCha: E2eeScheme = {
  name: 'x25519-hkdf-xchacha20poly1305',
  sealTo(recipient: Uint8Array): (plaintext: Uint8Array) => Uint8Array {
    const ephemeral = ephemeralX25519();
    const key = aeadKeyOf(ephemeral.agree(recipient));
    return (plaintext) => {
      const nonce = randomBytes(NONCE);
      return Buffer.concat([ephemeral.publicKey, nonce, xchacha20poly1305(key, nonce).encrypt(plaintext)]);
    };
  },
  open(payload: Uint8Array, agree: KeyAgreement): Uint8Array {
    if (payload.length < KEY + NONCE + TAG) throw new E2eeDecryptError();
    let key: Uint8Array;
    try {
      key = aeadKeyOf(agree(payload.subarray(0, KEY)));
    } catch {
      throw new E2eeDecryptError();
    }
    try {
      return xchacha20poly1305(key, payload.subarray(KEY, KEY + NONCE)).decrypt(
        payload.subarray(KEY + NONCE),
      );
    } catch {
      throw new E2eeDecryptError();
    } finally {
      key.fill(0);
    }
  },
};
