/**
 * Signing speed on one core: the sidecar's signers (what the proxy calls per response) against the
 * other secp256k1 implementations installed here. Each is timed in a tight loop for a fixed time
 * after a warm-up, in this process while nothing else runs.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  sign as nodeSign,
  randomBytes,
} from 'node:crypto';
import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { SigningKey } from 'ethers';
import { signRecoverable } from 'tiny-secp256k1';
import { createSigners, EphemeralKeySource, hashMessage } from '../src/keys/index.js';
import { signPair } from '../src/signatures/index.js';

export interface SigningRow {
  name: string;
  perSecond: number;
  usPerOp: number;
  note: string;
}

const timeIt = (seconds: number, fn: (i: number) => unknown): { perSecond: number; usPerOp: number } => {
  for (let i = 0; i < 200; i++) fn(i);
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let j = 0; j < 50; j++) fn(n++);
  }
  const ms = performance.now() - t0;
  return { perSecond: (n / ms) * 1000, usPerOp: (ms * 1000) / n };
};

/** libsecp256k1 as a native addon (the `secp256k1` package's prebuild), when it loads. */
const loadNative = (): ((h: Uint8Array, k: Uint8Array) => unknown) | undefined => {
  try {
    const require = createRequire(import.meta.url);
    // `bindings` directly: the package's main silently falls back to pure-JS elliptic.
    const mod = require('secp256k1/bindings') as { ecdsaSign(h: Uint8Array, k: Uint8Array): unknown };
    return (h, k) => mod.ecdsaSign(h, k);
  } catch {
    return undefined;
  }
};

export const runSigning = async (seconds: number): Promise<SigningRow[]> => {
  const signers = createSigners(await new EphemeralKeySource().load());
  const key = secp256k1.utils.randomSecretKey();
  const hashes = Array.from({ length: 64 }, (_, i) => hashMessage(`${i}`.padStart(129, 'a')));
  const text = (i: number): string =>
    `${createHash('sha256').update(String(i)).digest('hex')}:${'b'.repeat(64)}`;
  const texts = Array.from({ length: 64 }, (_, i) => text(i));
  const h = (i: number): Uint8Array => hashes[i & 63] as Uint8Array;
  const rows: SigningRow[] = [];
  const add = (name: string, note: string, fn: (i: number) => unknown): void => {
    rows.push({ name, note, ...timeIt(seconds, fn) });
  };
  add('sidecar ECDSA `signers.ecdsa.sign(text)`', 'EIP-191 hash + libsecp256k1 (native addon) + hex', (i) =>
    signers.ecdsa.sign(texts[i & 63] as string),
  );
  add('sidecar Ed25519 `signers.ed25519.sign(text)`', 'OpenSSL via node:crypto', (i) =>
    signers.ed25519.sign(texts[i & 63] as string),
  );
  add('sidecar `signPair` (both, per response)', 'what the proxy does per signed response', (i) =>
    signPair(signers, 'a'.repeat(64), (texts[i & 63] as string).slice(0, 64)),
  );
  add('tiny-secp256k1 `signRecoverable`', 'libsecp256k1 compiled to wasm, raw', (i) =>
    signRecoverable(h(i), key),
  );
  const native = loadNative();
  if (native !== undefined) {
    add('secp256k1 (native addon) `ecdsaSign`', 'libsecp256k1 N-API prebuild, raw', (i) => native(h(i), key));
  } else {
    rows.push({
      name: 'secp256k1 (native addon)',
      perSecond: Number.NaN,
      usPerOp: Number.NaN,
      note: 'native binding did not load',
    });
  }
  add('@noble/curves `secp256k1.sign` (previous path)', 'pure JS, RFC 6979', (i) =>
    secp256k1.sign(h(i), key, { prehash: false, format: 'recovered' }),
  );
  const seed = randomBytes(32);
  add('@noble/curves `ed25519.sign` (previous path)', 'pure JS', (i) => ed25519.sign(h(i), seed));
  const ethersKey = new SigningKey(key);
  add('ethers `SigningKey.sign`', 'pure JS (noble inside)', (i) => ethersKey.sign(h(i)));
  const { privateKey: ecKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  add('node:crypto ECDSA secp256k1 (OpenSSL)', 'random nonce, DER, no recovery id: not usable as is', (i) =>
    nodeSign(null, h(i), { key: ecKey, dsaEncoding: 'ieee-p1363' }),
  );
  const edKey = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), randomBytes(32)]),
    format: 'der',
    type: 'pkcs8',
  });
  add('node:crypto Ed25519 raw', 'OpenSSL, 32-byte message', (i) => nodeSign(null, h(i), edKey));
  return rows;
};
