/**
 * `npx tsx bench/verify-cpu.ts [--seconds S]`: CPU per signature check on one core, the EIP-191
 * recovery the verifier and the gateway run for every answer (src/verifier/verify-signed-text.ts):
 * noble's pure-JS recovery (what ran before) against libsecp256k1's native one (what runs now), and
 * the whole `verifySignedText` (digest, recovery, address, compare). Rows alternate round by round so
 * each sees the same machine load; the median µs per check is reported with the load average. Nothing
 * here asserts a timing.
 */
import { loadavg } from 'node:os';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { createSigners, hashMessage, recoverPublicKeyNative } from '../src/keys/index.js';
import { verifySignedText } from '../src/verifier/index.js';
import { arg } from './args.js';
import { median } from './proc.js';

const seconds = Number(arg('--seconds') ?? '1');
const rounds = Number(arg('--rounds') ?? '5');

const signers = createSigners({ secp256k1: new Uint8Array(32).fill(7), ed25519: new Uint8Array(32).fill(8) });
const texts = Array.from({ length: 64 }, (_, i) => `${i.toString(16).padStart(64, '0')}:${'ab'.repeat(32)}`);
const signatures = texts.map((t) => signers.ecdsa.sign(t));
const parsed = signatures.map((s) => {
  const bytes = Buffer.from(s.slice(2), 'hex');
  return { compact: bytes.subarray(0, 64), recovery: (bytes[64] ?? 27) - 27 };
});
const digests = texts.map((t) => hashMessage(t));

const noble = (i: number): unknown => {
  const { compact, recovery } = parsed[i % 64] ?? { compact: new Uint8Array(64), recovery: 0 };
  const recovered = new Uint8Array(65);
  recovered[0] = recovery;
  recovered.set(compact, 1);
  return secp256k1.recoverPublicKey(recovered, digests[i % 64] ?? new Uint8Array(32), { prehash: false });
};
const native = (i: number): unknown => {
  const { compact, recovery } = parsed[i % 64] ?? { compact: new Uint8Array(64), recovery: 0 };
  return recoverPublicKeyNative(compact, recovery, digests[i % 64] ?? new Uint8Array(32));
};
const whole = (i: number): unknown => {
  const verdict = verifySignedText(
    'ecdsa',
    texts[i % 64] ?? '',
    signatures[i % 64] ?? '',
    signers.ecdsa.address,
  );
  if (!verdict.ok) throw new Error('a check failed');
  return verdict;
};

/** µs of this process's CPU per call, over `seconds` of wall time. */
const cpuPerOp = (fn: (i: number) => unknown): number => {
  for (let i = 0; i < 100; i++) fn(i);
  const before = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < end) fn(n++);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
};

const rows = {
  'noble recovery (pure JS, before)': noble,
  'libsecp256k1 recovery (native, now)': native,
  'verifySignedText, ecdsa (now)': whole,
};
const samples = new Map<string, number[]>();
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(rows))
    samples.set(name, [...(samples.get(name) ?? []), cpuPerOp(fn)]);
}
console.log(
  `load average at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; ${rounds} rounds of ${seconds} s`,
);
console.log('| check | CPU µs per check (median) | range |');
console.log('|---|---|---|');
for (const [name, xs] of samples) {
  console.log(
    `| ${name} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} |`,
  );
}
