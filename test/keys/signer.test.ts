import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { hashMessage as ethersHashMessage, recoverAddress as ethersRecoverAddress, getAddress } from 'ethers';
import fc from 'fast-check';
import { recoverMessageAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { checksumAddress, createSigners, EphemeralKeySource, hashMessage } from '../../src/keys/index.js';

interface Vectors {
  secp256k1_key: string;
  ed25519_seed: string;
  ecdsa_address: string;
  ed25519_public_key: string;
  cases: Array<{
    name: string;
    request: string;
    response: string;
    text: string;
    ecdsa_signature: string;
    ed25519_signature: string;
  }>;
}
const vectors = JSON.parse(
  readFileSync(new URL('../vectors/signing-vectors.json', import.meta.url), 'utf8'),
) as Vectors;

const fixedSigners = () =>
  createSigners({
    secp256k1: new Uint8Array(Buffer.from(vectors.secp256k1_key, 'hex')),
    ed25519: new Uint8Array(Buffer.from(vectors.ed25519_seed, 'hex')),
  });

/** Ed25519 public key (32 raw bytes) as a node KeyObject, via its SPKI DER prefix (RFC 8410). */
const ed25519Key = (hex: string) =>
  createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(hex, 'hex')]),
    format: 'der',
    type: 'spki',
  });

describe('signers', () => {
  it('derive the vector addresses (EIP-55) and public keys', () => {
    const s = fixedSigners();
    expect(s.ecdsa.address).toBe(vectors.ecdsa_address);
    expect(s.ecdsa.address).toBe(getAddress(vectors.ecdsa_address));
    expect(s.ecdsa.publicKey).toMatch(/^[0-9a-f]{128}$/);
    expect(s.ed25519.address).toBe(vectors.ed25519_public_key);
    expect(s.ed25519.publicKey).toBe(vectors.ed25519_public_key);
  });

  it.each(vectors.cases.map((c) => [c.name, c] as const))(
    'reproduce the frozen signatures: %s',
    async (_name, c) => {
      const s = fixedSigners();
      const sig = s.ecdsa.sign(c.text);
      expect(sig).toBe(c.ecdsa_signature);
      expect(sig).toMatch(/^0x[0-9a-f]{130}$/);
      expect(['1b', '1c']).toContain(sig.slice(-2));
      // What the 0G SDK does, and what viem does.
      expect(ethersRecoverAddress(ethersHashMessage(c.text), sig)).toBe(vectors.ecdsa_address);
      expect(await recoverMessageAddress({ message: c.text, signature: sig as `0x${string}` })).toBe(
        vectors.ecdsa_address,
      );
      const ed = s.ed25519.sign(c.text);
      expect(ed).toBe(c.ed25519_signature);
      // An independent Ed25519 implementation (OpenSSL through node:crypto).
      expect(
        nodeVerify(
          null,
          Buffer.from(c.text, 'utf8'),
          ed25519Key(s.ed25519.publicKey),
          Buffer.from(ed, 'hex'),
        ),
      ).toBe(true);
    },
  );

  it('zero the key material they were handed and expose no key', () => {
    const material = {
      secp256k1: new Uint8Array(Buffer.from(vectors.secp256k1_key, 'hex')),
      ed25519: new Uint8Array(Buffer.from(vectors.ed25519_seed, 'hex')),
    };
    const s = createSigners(material);
    expect(material.secp256k1.every((b) => b === 0)).toBe(true);
    expect(material.ed25519.every((b) => b === 0)).toBe(true);
    const dump = JSON.stringify(s) + Object.values(s.ecdsa).join() + Object.values(s.ed25519).join();
    expect(dump).not.toContain(vectors.secp256k1_key);
    expect(dump).not.toContain(vectors.ed25519_seed);
    expect(Object.isFrozen(s.ecdsa)).toBe(true);
  });

  it('reject keys of the wrong length or out of range', () => {
    expect(() => createSigners({ secp256k1: new Uint8Array(31), ed25519: new Uint8Array(32) })).toThrow(
      /length 32/,
    );
    expect(() => createSigners({ secp256k1: new Uint8Array(32), ed25519: new Uint8Array(32) })).toThrow(
      /range/,
    );
  });

  it('checksum addresses per EIP-55', () => {
    // EIP-55's own examples.
    for (const a of [
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
    ]) {
      expect(checksumAddress(Buffer.from(a.slice(2), 'hex'))).toBe(a);
    }
  });
});

describe('signers against noble (an independent implementation of both curves)', () => {
  it('give the same bytes as noble for random keys and texts', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ maxLength: 200 }),
        (k, seed, text) => {
          fc.pre(secp256k1.utils.isValidSecretKey(k));
          const s = createSigners({ secp256k1: Uint8Array.from(k), ed25519: Uint8Array.from(seed) });
          const rec = secp256k1.sign(hashMessage(text), k, { prehash: false, format: 'recovered' });
          const expected = `0x${Buffer.from(rec.subarray(1)).toString('hex')}${(27 + (rec[0] ?? 0)).toString(16)}`;
          expect(s.ecdsa.sign(text)).toBe(expected);
          expect(s.ed25519.sign(text)).toBe(
            Buffer.from(ed25519.sign(new TextEncoder().encode(text), seed)).toString('hex'),
          );
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('EphemeralKeySource', () => {
  it('draws fresh keys from the CSPRNG and redraws an out-of-range scalar', async () => {
    const draws = [new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(7), new Uint8Array(32).fill(9)];
    const source = new EphemeralKeySource(() => draws.shift() as Uint8Array);
    const m = await source.load();
    expect(m.secp256k1[0]).toBe(7);
    expect(m.ed25519[0]).toBe(9);
    const a = createSigners(await new EphemeralKeySource().load());
    const b = createSigners(await new EphemeralKeySource().load());
    expect(a.ecdsa.address).not.toBe(b.ecdsa.address);
  });
});
