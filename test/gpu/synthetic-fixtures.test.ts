import { createPublicKey, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FILES, generate, ROOT_NAME, readShape, TEMPLATE_NONCE } from '../../scripts/gen-gpu-fixtures.js';
import { splitPemChain } from '../../src/gpu/cert-chain.js';
import { parseGpuEvidence } from '../../src/gpu/evidence.js';
import { checkGpuEvidence } from '../../src/gpu/local-check.js';
import { loadSyntheticGpuFixtures, SYNTHETIC_GPU_FIXTURE_DIR } from '../../src/gpu/synthetic-fixtures.js';
import { ownFixtures, sharedFixtures } from '../paths.js';
import { hopper } from './fixtures.js';

const committed = (name: string) => readFileSync(ownFixtures(`gpu/${name}`), 'utf8');

describe('attestation-fixtures/gpu (generated, committed)', () => {
  it('regenerating gives byte-identical files', () => {
    const files = generate(
      readShape(sharedFixtures('nvidia/nvtrust-hopper-sample/hopperAttestationReport.txt')),
    );
    expect(Object.keys(files).sort()).toEqual(readdirSync(ownFixtures('gpu')).sort());
    for (const [name, text] of Object.entries(files)) expect(committed(name), name).toBe(text);
  });

  it('the chain has 5 certificates, leaf first, ending at the labelled synthetic root', () => {
    const certs = splitPemChain(committed(FILES.chain));
    expect(certs).toHaveLength(5);
    expect(certs[4]?.subject).toContain(`CN=${ROOT_NAME}`);
    expect(ROOT_NAME).toBe('SYNTHETIC TEST ROOT – NOT NVIDIA');
    expect(certs[0]?.ca).toBe(false);
    expect(certs.slice(1).every((c) => c.ca)).toBe(true);
    expect(certs.every((c) => !c.subject.includes('NVIDIA Corporation'))).toBe(true);
  });

  it('the leaf key belongs to the leaf certificate and the root fingerprint to the root', async () => {
    const fixtures = await loadSyntheticGpuFixtures();
    const leaf = new X509Certificate(
      committed(FILES.chain).split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----',
    );
    const fromKey = createPublicKey(fixtures.leafKey).export({ type: 'spki', format: 'der' });
    expect(Buffer.compare(fromKey, leaf.publicKey.export({ type: 'spki', format: 'der' }))).toBe(0);
    // SHA-256 of the root certificate's DER, computed here by OpenSSL (node:crypto), not by our code.
    const rootPem = `-----BEGIN CERTIFICATE-----${committed(FILES.chain).split('-----BEGIN CERTIFICATE-----').at(-1)}`;
    const rootSha = new X509Certificate(rootPem).fingerprint256.replaceAll(':', '').toLowerCase();
    expect(fixtures.rootFingerprint).toBe(rootSha);
    expect(SYNTHETIC_GPU_FIXTURE_DIR.endsWith('attestation-fixtures/gpu/')).toBe(true);
  });

  it('the template has the real layout and passes the local check for its nonce with the synthetic root', async () => {
    const fixtures = await loadSyntheticGpuFixtures();
    const real = parseGpuEvidence(hopper().evidence);
    const parsed = parseGpuEvidence(fixtures.template);
    expect(fixtures.template.length).toBe(hopper().evidence.length);
    expect(parsed.measurementBlocks.map((b) => b.value.length)).toEqual(
      real.measurementBlocks.map((b) => b.value.length),
    );
    expect(parsed.opaque.map((f) => f.type)).toEqual(real.opaque.map((f) => f.type));
    expect(parsed.driverVersion).toBe('550.90.07');
    expect(parsed.vbiosVersion).toBe('96.00.9F.00.01');
    // Synthetic values: no measurement copied from the real report.
    expect(
      parsed.measurementBlocks.some(
        (b, i) => Buffer.compare(b.value, real.measurementBlocks[i]!.value) === 0,
      ),
    ).toBe(false);
    const check = { nonce: TEMPLATE_NONCE, now: new Date('2026-01-01T00:00:00Z') };
    const gpu = { evidence: fixtures.template, certificateChain: fixtures.chainPem };
    expect(checkGpuEvidence(gpu, { ...check, pinnedRoots: [fixtures.rootFingerprint] }).ok).toBe(true);
    expect(checkGpuEvidence(gpu, check).failure?.check).toBe('chain');
  });

  it('the key file is labelled test-only', () => {
    expect(FILES.leafKey).toContain('TEST-ONLY');
    expect(committed('README.md')).toMatch(/TEST ONLY/);
  });
});
