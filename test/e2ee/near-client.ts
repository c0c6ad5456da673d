/**
 * An independent client half of NEAR AI's E2EE protocol, built the way their published verifier
 * (`nearai-cloud-verifier`, `ts/encrypted_chat_verifier.ts`) builds it: ethers for secp256k1 keys and
 * ECDH, a hand-written HKDF over HMAC-SHA256 with a zero salt, AES-256-GCM; tweetnacl `box` with keys
 * converted by ed2curve. It shares no code with src/e2ee, so a test that passes with it shows the
 * sidecar speaks the protocol, not merely agrees with itself.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { convertPublicKey, convertSecretKey } from 'ed2curve';
import { SigningKey, Wallet } from 'ethers';
import nacl from 'tweetnacl';

const hkdf = (ikm: Buffer, info: string): Buffer => {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(ikm).digest();
  return createHmac('sha256', prk)
    .update(Buffer.from(info))
    .update(Buffer.from([1]))
    .digest()
    .subarray(0, 32);
};

const sharedX = (privateKey: string, publicKey: string): Buffer =>
  Buffer.from(new SigningKey(privateKey).computeSharedSecret(publicKey).slice(4, 68), 'hex');

export interface NearEcdsaKeys {
  privateKey: string;
  /** 64 bytes, no 04 prefix, hex: what goes in X-Client-Pub-Key. */
  publicKey: string;
}

export const ecdsaKeys = (): NearEcdsaKeys => {
  const wallet = Wallet.createRandom();
  return { privateKey: wallet.privateKey, publicKey: wallet.signingKey.publicKey.slice(4) };
};

export const encryptEcdsa = (plaintext: string, modelKey64Hex: string): string => {
  const eph = Wallet.createRandom();
  const key = hkdf(sharedX(eph.privateKey, `0x04${modelKey64Hex}`), 'ecdsa_encryption');
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final(), c.getAuthTag()]);
  return Buffer.concat([Buffer.from(eph.signingKey.publicKey.slice(2), 'hex'), nonce, ct]).toString('hex');
};

export const decryptEcdsa = (hex: string, privateKey: string): string => {
  const data = Buffer.from(hex, 'hex');
  const key = hkdf(sharedX(privateKey, `0x${data.subarray(0, 65).toString('hex')}`), 'ecdsa_encryption');
  const d = createDecipheriv('aes-256-gcm', key, data.subarray(65, 77));
  d.setAuthTag(data.subarray(data.length - 16));
  return Buffer.concat([d.update(data.subarray(77, data.length - 16)), d.final()]).toString('utf8');
};

export interface NearEd25519Keys {
  /** tweetnacl's 64-byte secret key (seed ‖ public key). */
  secretKey: Uint8Array;
  publicKey: string;
}

export const ed25519Keys = (): NearEd25519Keys => {
  const pair = nacl.sign.keyPair();
  return { secretKey: pair.secretKey, publicKey: Buffer.from(pair.publicKey).toString('hex') };
};

export const encryptEd25519 = (plaintext: string, modelKeyHex: string): string => {
  const x = convertPublicKey(new Uint8Array(Buffer.from(modelKeyHex, 'hex')));
  if (x === null) throw new Error('not an Ed25519 key');
  const eph = nacl.box.keyPair();
  const nonce = nacl.randomBytes(24);
  const box = nacl.box(new Uint8Array(Buffer.from(plaintext, 'utf8')), nonce, x, eph.secretKey);
  return Buffer.concat([eph.publicKey, nonce, box]).toString('hex');
};

export const decryptEd25519 = (hex: string, secretKey: Uint8Array): string => {
  const data = new Uint8Array(Buffer.from(hex, 'hex'));
  const opened = nacl.box.open(
    data.subarray(56),
    data.subarray(32, 56),
    data.subarray(0, 32),
    convertSecretKey(secretKey),
  );
  if (opened === null) throw new Error('box does not open');
  return Buffer.from(opened).toString('utf8');
};

/** X25519 agreement the tweetnacl way (for checking the signer's ecdh). */
export const naclShared = (secretKey: Uint8Array, peerX25519: Uint8Array): Uint8Array =>
  nacl.scalarMult(convertSecretKey(secretKey), peerX25519);

export const ethersShared = (privateKey: string, point65Hex: string): Buffer =>
  sharedX(privateKey, `0x${point65Hex}`);
