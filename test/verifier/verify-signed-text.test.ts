import { ed25519 } from '@noble/curves/ed25519.js';
import { hashMessage, recoverAddress, Wallet } from 'ethers';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { createSigners } from '../../src/keys/index.js';
import { recoverEip191Address, verifySignedText } from '../../src/verifier/index.js';

const TEXT = `${'a'.repeat(64)}:${'b'.repeat(64)}`;

describe('recoverEip191Address (noble, cross-checked with ethers and viem)', () => {
  it('recovers signatures made by ethers and viem', async () => {
    const wallet = Wallet.createRandom();
    expect(recoverEip191Address(TEXT, await wallet.signMessage(TEXT))).toBe(wallet.address);
    const account = privateKeyToAccount(`0x${'11'.repeat(32)}`);
    expect(recoverEip191Address(TEXT, await account.signMessage({ message: TEXT }))).toBe(account.address);
  });

  it('recovers the sidecar signer, with v as 27/28 or as 0/1', () => {
    const signers = createSigners({
      secp256k1: new Uint8Array(32).fill(3),
      ed25519: new Uint8Array(32).fill(4),
    });
    const signature = signers.ecdsa.sign(TEXT);
    expect(recoverEip191Address(TEXT, signature)).toBe(signers.ecdsa.address);
    // The 0G SDK's own recovery agrees.
    expect(recoverAddress(hashMessage(TEXT), signature)).toBe(recoverEip191Address(TEXT, signature));
    const v = Number.parseInt(signature.slice(130), 16);
    const raw = `${signature.slice(0, 130)}0${v - 27}`;
    expect(recoverEip191Address(TEXT, raw)).toBe(signers.ecdsa.address);
  });

  it('rejects malformed signatures without echoing them', () => {
    expect(() => recoverEip191Address(TEXT, '0x1234')).toThrow(/65 bytes/);
    expect(() => recoverEip191Address(TEXT, `0x${'11'.repeat(64)}05`)).toThrow(/recovery byte/);
  });
});

describe('verifySignedText', () => {
  it('ecdsa: passes for the attested address (any case), fails for another', async () => {
    const wallet = Wallet.createRandom();
    const signature = await wallet.signMessage(TEXT);
    expect(verifySignedText('ecdsa', TEXT, signature, wallet.address.toLowerCase()).ok).toBe(true);
    const other = verifySignedText('ecdsa', TEXT, signature, `0x${'00'.repeat(20)}`);
    expect(other).toMatchObject({ ok: false, signer: wallet.address });
    expect(verifySignedText('ecdsa', `${TEXT}x`, signature, wallet.address).ok).toBe(false);
  });

  it('ed25519: verifies with the attested public key', () => {
    const secret = new Uint8Array(32).fill(9);
    const publicKey = Buffer.from(ed25519.getPublicKey(secret)).toString('hex');
    const signature = Buffer.from(ed25519.sign(new TextEncoder().encode(TEXT), secret)).toString('hex');
    expect(verifySignedText('ed25519', TEXT, signature, publicKey).ok).toBe(true);
    expect(verifySignedText('ed25519', TEXT, signature, '22'.repeat(32)).ok).toBe(false);
    expect(verifySignedText('ed25519', TEXT, 'zz', publicKey).ok).toBe(false);
  });
});
