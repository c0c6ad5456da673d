import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { SigningAlgo } from '../keys/index.js';
import {
  addressOfPublicKey,
  checksumAddress,
  hashMessage,
  hasNativeSecp256k1,
  recoverPublicKeyNative,
} from '../keys/index.js';
import { normalizeHex } from './report-shape.js';

/**
 * The uncompressed key that signed `digest`: libsecp256k1's native recovery (~25x less CPU than the
 * pure-JS one, BENCHMARKS.md) where its prebuild loads, noble's elsewhere. Both accept the same
 * signatures and recover the same keys (test/verifier/verify-signed-text.test.ts, property test).
 */
const recoverPublicKey = (compact: Uint8Array, recovery: number, digest: Uint8Array): Uint8Array => {
  if (hasNativeSecp256k1()) return recoverPublicKeyNative(compact, recovery, digest);
  // noble's 'recovered' format is recovery ‖ r ‖ s.
  const recovered = new Uint8Array(65);
  recovered[0] = recovery;
  recovered.set(compact, 1);
  const publicKey = secp256k1.recoverPublicKey(recovered, digest, { prehash: false });
  return secp256k1.Point.fromBytes(publicKey).toBytes(false);
};

/**
 * Recovers the signer of an EIP-191 `personal_sign` signature over UTF-8 text (docs/protocol.md,
 * "Signed text and signatures": `0x` r(32) s(32) v(1), v = 27 or 28) and returns its EIP-55
 * address. This is what the 0G SDK does with `ethers.recoverAddress(ethers.hashMessage(text), sig)`.
 * Throws for a malformed signature.
 */
export const recoverEip191Address = (text: string, signature: string): string => {
  const hex = normalizeHex(signature);
  if (!/^[0-9a-f]{130}$/.test(hex)) throw new TypeError('"signature" expected 65 bytes of hex (r ‖ s ‖ v)');
  const bytes = Buffer.from(hex, 'hex');
  const v = bytes[64] ?? 0;
  // Ethereum writes v as 27/28; some signers write the raw recovery bit 0/1.
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery !== 0 && recovery !== 1) throw new TypeError('"signature" has an invalid recovery byte');
  const point = recoverPublicKey(bytes.subarray(0, 64), recovery, hashMessage(text));
  return addressOfPoint(point);
};

/**
 * The EIP-55 address of a recovered key, remembered for the last few keys: a verifier checks answer
 * after answer from one attested signer, and the address costs two keccak256 in JavaScript.
 */
const addresses = new Map<string, string>();
const addressOfPoint = (point: Uint8Array): string => {
  const key = Buffer.from(point).toString('latin1');
  const known = addresses.get(key);
  if (known !== undefined) return known;
  const address = checksumAddress(addressOfPublicKey(point));
  if (addresses.size >= 16) addresses.clear();
  addresses.set(key, address);
  return address;
};

/**
 * Checks `signature` over `text` against the attested signer: ecdsa recovers the address and
 * compares it case-insensitively; ed25519 verifies with the 32-byte public key (its "address").
 */
export const verifySignedText = (
  algo: SigningAlgo,
  text: string,
  signature: string,
  attested: string,
): { ok: boolean; signer?: string; reason?: string } => {
  try {
    if (algo === 'ecdsa') {
      const signer = recoverEip191Address(text, signature);
      return normalizeHex(signer) === normalizeHex(attested)
        ? { ok: true, signer }
        : { ok: false, signer, reason: `signed by ${signer}, not by the attested ${attested}` };
    }
    const sig = normalizeHex(signature);
    const key = normalizeHex(attested);
    if (!/^[0-9a-f]{128}$/.test(sig))
      return { ok: false, reason: 'ed25519 signature is not 64 bytes of hex' };
    const ok = ed25519.verify(
      Buffer.from(sig, 'hex'),
      new TextEncoder().encode(text),
      Buffer.from(key, 'hex'),
    );
    return ok
      ? { ok, signer: key }
      : { ok, reason: 'ed25519 signature does not verify with the attested key' };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : 'malformed signature' };
  }
};
