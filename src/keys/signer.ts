import { createPrivateKey, sign as nodeSign } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
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
  });
};

/** RFC 8410 PKCS#8 prefix for a raw 32-byte Ed25519 seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

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
  return Object.freeze({
    algo: 'ed25519' as const,
    address: hex,
    addressBytes: pub,
    publicKey: hex,
    sign: (text: string): string => nodeSign(null, encoder.encode(text), key).toString('hex'),
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
