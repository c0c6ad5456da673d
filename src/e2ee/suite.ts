import { ed25519 } from '@noble/curves/ed25519.js';
import { isPoint } from 'tiny-secp256k1';
import type { SigningAlgo } from '../keys/index.js';
import { ecies } from './ecies.js';
import { naclBox } from './nacl-box.js';
import type { E2eeScheme } from './scheme.js';
import { x25519XChaCha } from './x25519-xchacha.js';

/** `X-Encryption-Version` values NEAR's inference-proxy accepts (1 when absent). */
export type E2eeVersion = 1 | 2;
export const E2EE_VERSIONS: readonly E2eeVersion[] = [1, 2];

/**
 * The scheme for an algorithm and version. ecdsa is ECIES in both versions; ed25519 is the NaCl box
 * in version 1 and HKDF + XChaCha20-Poly1305 in version 2 (inference-proxy `encrypt_string`).
 */
export const schemeFor = (algo: SigningAlgo, version: E2eeVersion): E2eeScheme =>
  algo === 'ecdsa' ? ecies : version === 2 ? x25519XChaCha : naclBox;

/**
 * A public key as the wire carries it (ecdsa: 64 bytes raw or 65 with the 04 prefix; ed25519: 32-byte
 * Ed25519 key) → what the scheme seals to (SEC1 uncompressed point; X25519 key). Throws RangeError for
 * a wrong length, a value that is not a point on the curve, or a small-order Ed25519 point.
 */
export const recipientKeyOf = (algo: SigningAlgo, key: Uint8Array): Uint8Array => {
  if (algo === 'ecdsa') {
    if (key.length !== 64 && !(key.length === 65 && key[0] === 0x04)) {
      throw new RangeError(`expected 64 bytes (or 65 with the 04 prefix), got ${key.length}`);
    }
    const point = key.length === 64 ? Uint8Array.of(0x04, ...key) : key;
    if (!isPoint(point)) throw new RangeError('not a point on secp256k1');
    return point;
  }
  if (key.length !== 32) throw new RangeError(`expected 32 bytes, got ${key.length}`);
  let smallOrder: boolean;
  try {
    smallOrder = ed25519.Point.fromBytes(key).isSmallOrder();
  } catch {
    throw new RangeError('not an Ed25519 public key');
  }
  // A small-order point (the identity, the points of order 2, 4 and 8, in any encoding libsodium
  // lists in `ge25519_has_small_order`) makes every X25519 agreement all zeros: nothing could be
  // sealed to it, so it is refused here, before the request reaches the model (docs/protocol.md).
  if (smallOrder) throw new RangeError('a small-order point (no key agreement is possible with it)');
  return ed25519.utils.toMontgomery(key);
};
