import { createHash, createPrivateKey, createPublicKey, diffieHellman, sign as nodeSign } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { pointMultiply } from 'tiny-secp256k1';
import { assertBytes, toHex } from '../bytes/index.js';
import { addressOfPublicKey, checksumAddress, hashMessage } from './eip191.js';
import type { KeyMaterial } from './key-source.js';
import { nativeSecp256k1, signRecoverableNative } from './native-secp256k1.js';

export type SigningAlgo = 'ecdsa' | 'ed25519';
export const SIGNING_ALGOS: readonly SigningAlgo[] = ['ecdsa', 'ed25519'];

/**
 * A signing identity. The private key is captured in the closure of `sign` and nowhere else: there is
 * no property, method or error path that returns it.
 */
export interface Signer {
  readonly algo: SigningAlgo;
  /** ecdsa: EIP-55 checksummed `0x` address; ed25519: 32-byte public key as lowercase hex. */
  readonly address: string;
  /** ecdsa: the address's 20 bytes; ed25519: the 32-byte public key (what goes in report_data [0, 32)). */
  readonly addressBytes: Uint8Array;
  /** ecdsa: 64-byte uncompressed point without the 04 prefix, hex; ed25519: 32-byte key, hex. */
  readonly publicKey: string;
  /** Signs UTF-8 text: ecdsa `0x` r‖s‖v (v = 27|28, 132 chars, EIP-191); ed25519 64 bytes lowercase hex. */
  sign(text: string): string;
  /**
   * Key agreement with the same private key, for end-to-end encryption to this identity (NEAR AI's
   * protocol decrypts with the signing key). ecdsa: `peer` is a SEC1 secp256k1 point (65 bytes
   * uncompressed or 33 compressed), the result the 32-byte x-coordinate of the shared point (what
   * OpenSSL, k256 and Python `cryptography` call the ECDH secret). ed25519: `peer` is a 32-byte X25519
   * public key; the private scalar is the RFC 8032 one (SHA-512 of the seed, first half, clamped:
   * libsodium `crypto_sign_ed25519_sk_to_curve25519`), the result the 32-byte X25519 secret. Throws
   * a RangeError for a peer key that is not a valid point (or a low-order X25519 key). Only the
   * shared secret leaves the closure, never the key.
   */
  ecdh(peer: Uint8Array): Uint8Array;
}

export interface Signers {
  readonly ecdsa: Signer;
  readonly ed25519: Signer;
  get(algo: SigningAlgo): Signer;
}

const encoder = new TextEncoder();

const ecdsaSigner = (secret: Uint8Array): Signer => {
  if (!secp256k1.utils.isValidSecretKey(secret)) throw new RangeError('secp256k1 key out of range');
  // Loaded now, not on the first signature: without the binding the sidecar does not start.
  nativeSecp256k1();
  const key = Uint8Array.from(secret);
  const point = secp256k1.getPublicKey(key, false);
  const addressBytes = addressOfPublicKey(point);
  return Object.freeze({
    algo: 'ecdsa' as const,
    address: checksumAddress(addressBytes),
    addressBytes,
    publicKey: toHex(point.subarray(1)),
    sign(text: string): string {
      // libsecp256k1 (native addon): RFC 6979 deterministic nonce, low-s, the same bytes noble gives
      // (the frozen vectors pin this) at ~12x noble's speed; BENCHMARKS.md has the figures.
      const { signature, recoveryId } = signRecoverableNative(hashMessage(text), key);
      return `0x${toHex(signature)}${(27 + recoveryId).toString(16)}`;
    },
    ecdh(peer: Uint8Array): Uint8Array {
      if (!(peer instanceof Uint8Array) || (peer.length !== 65 && peer.length !== 33)) {
        throw new RangeError('secp256k1 peer key must be a 65- or 33-byte SEC1 point');
      }
      // libsecp256k1 compiled to wasm (tiny-secp256k1, which E2EE also uses for its point checks and
      // client half): ~4x OpenSSL's generic secp256k1 ECDH here. The shared
      // secret is the x-coordinate, i.e. the compressed point without its parity byte.
      let shared: Uint8Array | null;
      try {
        shared = pointMultiply(peer, key, true);
      } catch {
        shared = null;
      }
      if (shared === null) throw new RangeError('secp256k1 peer key is not a point on the curve');
      return shared.subarray(1);
    },
  });
};

/** RFC 8410 PKCS#8 prefix for a raw 32-byte Ed25519 seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** RFC 8410 PKCS#8 prefix for a raw 32-byte X25519 private key, and the SPKI one for a public key. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** The X25519 private key of an Ed25519 seed: SHA-512(seed)[0, 32) (OpenSSL clamps it on use). */
const x25519KeyOf = (seed: Uint8Array): ReturnType<typeof createPrivateKey> => {
  const scalar = createHash('sha512').update(seed).digest().subarray(0, 32);
  const der = Buffer.concat([X25519_PKCS8_PREFIX, scalar]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
    scalar.fill(0);
  }
};

const ed25519Signer = (seed: Uint8Array): Signer => {
  const pub = ed25519.getPublicKey(seed);
  const hex = toHex(pub);
  // OpenSSL's Ed25519 (RFC 8032, deterministic: same bytes as noble) is ~15x faster here than pure
  // JS. The KeyObject lives only in this closure; the DER copy of the seed is zeroed at once.
  const der = Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
  const x25519 = x25519KeyOf(seed);
  return Object.freeze({
    algo: 'ed25519' as const,
    address: hex,
    addressBytes: pub,
    publicKey: hex,
    sign: (text: string): string => nodeSign(null, encoder.encode(text), key).toString('hex'),
    ecdh(peer: Uint8Array): Uint8Array {
      if (!(peer instanceof Uint8Array) || peer.length !== 32) {
        throw new RangeError('X25519 peer key must be 32 bytes');
      }
      try {
        const publicKey = createPublicKey({
          key: Buffer.concat([X25519_SPKI_PREFIX, peer]),
          format: 'der',
          type: 'spki',
        });
        // OpenSSL refuses an all-zero result (a low-order peer point), as RFC 7748 section 6.1 allows.
        return new Uint8Array(diffieHellman({ privateKey: x25519, publicKey }));
      } catch {
        throw new RangeError('X25519 peer key is not usable');
      }
    },
  });
};

/**
 * Builds both signers from a key source's material and zeroes the material it was handed, so the
 * only copies of the keys live inside the signers' closures.
 */
export const createSigners = (material: KeyMaterial): Signers => {
  assertBytes('secp256k1', material.secp256k1, 32);
  assertBytes('ed25519', material.ed25519, 32);
  try {
    const ecdsa = ecdsaSigner(material.secp256k1);
    const ed = ed25519Signer(material.ed25519);
    return Object.freeze({ ecdsa, ed25519: ed, get: (algo: SigningAlgo) => (algo === 'ecdsa' ? ecdsa : ed) });
  } finally {
    material.secp256k1.fill(0);
    material.ed25519.fill(0);
  }
};
