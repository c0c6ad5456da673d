import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256Fingerprint, splitPemChain } from './cert-chain.js';

/**
 * The committed synthetic GPU fixtures (attestation-fixtures/gpu/README.md, written by
 * scripts/gen-gpu-fixtures.ts): a throwaway chain to "SYNTHETIC TEST ROOT – NOT NVIDIA", its
 * leaf key and an evidence template. Resolved from this module's location, which is the same
 * two levels below the repository root in src/ and in dist/.
 */
export const SYNTHETIC_GPU_FIXTURE_DIR = fileURLToPath(
  new URL('../../attestation-fixtures/gpu/', import.meta.url),
);

export interface SyntheticGpuFixtures {
  chainPem: string;
  /** TEST-ONLY key: public by construction (derived from a fixed label). */
  leafKey: KeyObject;
  template: Uint8Array;
  /** SHA-256 of the synthetic root's DER: pin it only in simulated mode. */
  rootFingerprint: string;
}

export const loadSyntheticGpuFixtures = async (
  dir = SYNTHETIC_GPU_FIXTURE_DIR,
): Promise<SyntheticGpuFixtures> => {
  const [chainPem, keyPem, templateHex, fingerprint] = await Promise.all([
    readFile(join(dir, 'synthetic-cert-chain.pem'), 'utf8'),
    readFile(join(dir, 'synthetic-leaf-key.TEST-ONLY.pem'), 'utf8'),
    readFile(join(dir, 'synthetic-evidence-template.hex'), 'utf8'),
    readFile(join(dir, 'synthetic-root.sha256'), 'utf8'),
  ]);
  const certs = splitPemChain(chainPem);
  const root = certs[certs.length - 1];
  const rootFingerprint = fingerprint.trim();
  if (root === undefined || sha256Fingerprint(root) !== rootFingerprint) {
    throw new Error('synthetic GPU fixtures: synthetic-root.sha256 does not match the chain');
  }
  return {
    chainPem,
    leafKey: createPrivateKey(keyPem),
    template: new Uint8Array(Buffer.from(templateHex.trim(), 'hex')),
    rootFingerprint,
  };
};
