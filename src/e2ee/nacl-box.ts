import { randomBytes } from 'node:crypto';
import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { E2eeDecryptError, type E2eeScheme, type KeyAgreement } from './scheme.js';
import { ephemeralX25519 } from './x25519.js';

const KEY = 32;
const NONCE = 24;
const TAG = 16;

/** "expand 32-byte k" as little-endian words: the sigma of HSalsa20 and HChaCha20 with 32-byte keys. */
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

/**
 * NaCl `crypto_box_beforenm`: the box key is H(X25519 secret, 16 zero bytes), HSalsa20 for the
 * classic XSalsa20-Poly1305 box, HChaCha20 for the XChaCha20-Poly1305 box of RustCrypto `crypto_box`.
 */
const beforenm = (shared: Uint8Array, core: typeof hsalsa): Uint8Array => {
  const out = new Uint32Array(8);
  core(SIGMA, new Uint32Array(Uint8Array.from(shared).buffer), new Uint32Array(4), out);
  return new Uint8Array(out.buffer);
};

/**
 * NaCl box (X25519 + XSalsa20-Poly1305): ephemeral X25519 public key (32) ‖ nonce (24) ‖ box
 * (tag ‖ ciphertext, NaCl order). This is what NEAR's published clients seal and open (tweetnacl
 * `box`, PyNaCl `Box`). Opening also accepts RustCrypto's XChaCha20-Poly1305 box (ciphertext ‖ tag),
 * which NEAR's Rust inference-proxy tries first since March 2026.
 */
export const naclBox: E2eeScheme = {
  name: 'x25519-xsalsa20poly1305-box',
  sealTo(recipient: Uint8Array): (plaintext: Uint8Array) => Uint8Array {
    const ephemeral = ephemeralX25519();
    const key = beforenm(ephemeral.agree(recipient), hsalsa);
    return (plaintext) => {
      const nonce = randomBytes(NONCE);
      return Buffer.concat([ephemeral.publicKey, nonce, xsalsa20poly1305(key, nonce).encrypt(plaintext)]);
    };
  },
  open(payload: Uint8Array, agree: KeyAgreement): Uint8Array {
    if (payload.length < KEY + NONCE + TAG) throw new E2eeDecryptError();
    let shared: Uint8Array;
    try {
      shared = agree(payload.subarray(0, KEY));
    } catch {
      throw new E2eeDecryptError();
    }
    const nonce = payload.subarray(KEY, KEY + NONCE);
    const sealed = payload.subarray(KEY + NONCE);
    for (const [core, aead] of [
      [hsalsa, xsalsa20poly1305],
      [hchacha, xchacha20poly1305],
    ] as const) {
      const key = beforenm(shared, core);
      try {
        return aead(key, nonce).decrypt(sealed);
      } catch {
        // try the next construction
      } finally {
        key.fill(0);
      }
    }
    throw new E2eeDecryptError();
  },
};
