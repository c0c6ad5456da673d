import { secp256k1 } from '@noble/curves/secp256k1.js';
import { hashMessage as ethersHashMessage, recoverAddress } from 'ethers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addressOfPublicKey,
  checksumAddress,
  hashMessage,
  hasNativeSecp256k1,
  recoverPublicKeyNative,
} from '../../src/keys/index.js';
import { recoverEip191Address } from '../../src/verifier/index.js';

/** The pure-JS reference: noble's recovery, as the verifier ran it before the native binding. */
const nobleRecover = (compact: Uint8Array, recovery: number, digest: Uint8Array): Uint8Array => {
  const recovered = new Uint8Array(65);
  recovered[0] = recovery;
  recovered.set(compact, 1);
  return secp256k1.Point.fromBytes(secp256k1.recoverPublicKey(recovered, digest, { prehash: false })).toBytes(
    false,
  );
};

/** The key each implementation recovers, or 'throws'. */
const outcome = (recover: () => Uint8Array): string => {
  try {
    return Buffer.from(recover()).toString('hex');
  } catch {
    return 'throws';
  }
};

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('recoverPublicKeyNative (libsecp256k1) against noble and ethers', () => {
  it('the binding loads on this platform (the verifier uses it)', () => {
    expect(hasNativeSecp256k1()).toBe(true);
  });

  it('recovers the same key as noble, and the same EIP-191 address as ethers, for real signatures', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 48, maxLength: 48 }),
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.boolean(),
        (seed, text, highS) => {
          const secret = secp256k1.utils.randomSecretKey(seed);
          const digest = hashMessage(text);
          const sig = secp256k1.Signature.fromBytes(
            secp256k1.sign(digest, secret, { prehash: false, format: 'recovered' }),
            'recovered',
          );
          // A high-s twin of the same signature (s → n − s, recovery bit flipped): recovery accepts it.
          const used = highS
            ? new secp256k1.Signature(sig.r, secp256k1.Point.CURVE().n - sig.s, (sig.recovery ?? 0) ^ 1)
            : sig;
          const compact = used.toBytes('compact');
          const recovery = used.recovery ?? 0;
          const expected = secp256k1.getPublicKey(secret, false);
          expect(hex(recoverPublicKeyNative(compact, recovery, digest))).toBe(hex(expected));
          expect(hex(nobleRecover(compact, recovery, digest))).toBe(hex(expected));
          const signature = `0x${hex(compact)}${(27 + recovery).toString(16)}`;
          const address = checksumAddress(addressOfPublicKey(expected));
          expect(recoverEip191Address(text, signature)).toBe(address);
          if (!highS) expect(recoverAddress(ethersHashMessage(text), signature)).toBe(address);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('agrees with noble on arbitrary bytes: the same key, or both refuse', () => {
    const scalar = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.constant(new Uint8Array(32)),
      fc.constant(new Uint8Array(32).fill(0xff)),
    );
    fc.assert(
      fc.property(
        scalar,
        scalar,
        fc.integer({ min: 0, max: 1 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (r, s, recovery, digest) => {
          const compact = new Uint8Array([...r, ...s]);
          expect(outcome(() => recoverPublicKeyNative(compact, recovery, digest))).toBe(
            outcome(() => nobleRecover(compact, recovery, digest)),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses r or s outside [1, n) with a message that names the field only', () => {
    const digest = new Uint8Array(32).fill(1);
    expect(() => recoverPublicKeyNative(new Uint8Array(64).fill(0xff), 0, digest)).toThrow(
      /^"signature" r or s is out of range$/,
    );
  });
});
