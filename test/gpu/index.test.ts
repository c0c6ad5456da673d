import { expect, it } from 'vitest';
import * as gpu from '../../src/gpu/index.js';

it('src/gpu/index.ts exports exactly its public surface', () => {
  expect(Object.keys(gpu).sort()).toEqual(
    [
      'EVIDENCE_NONCE_LENGTH',
      'EVIDENCE_NONCE_OFFSET',
      'EVIDENCE_SIGNATURE_LENGTH',
      'FixtureGpuEvidenceProvider',
      'GPU_CERT_CHAIN_LENGTH',
      'HttpGpuEvidenceProvider',
      'KNOWN_SAMPLE_NONCES',
      'NRAS_BASE_URL',
      'NRAS_ISSUER',
      'NVIDIA_DEVICE_IDENTITY_CA_SHA256',
      'NVML_LAYOUT',
      'NoGpuEvidenceProvider',
      'NvmlGpuEvidenceProvider',
      'SPDM_REQUEST_LENGTH',
      'SYNTHETIC_GPU_FIXTURE_DIR',
      'SimulatedGpuEvidenceProvider',
      'assertGpuEvidence',
      'buildNvidiaPayload',
      'checkGpuEvidence',
      'fetchNrasJwks',
      'loadNvml',
      'loadSyntheticGpuFixtures',
      'nrasSelfCheck',
      'parseEvidenceDocument',
      'parseGpuEvidence',
      'parseNvidiaPayload',
      'sha256Fingerprint',
      'splitPemChain',
      'submitToNras',
      'synthesizeGpuEvidence',
      'verifyCertificateChain',
      'verifyNrasResult',
    ].sort(),
  );
  expect(gpu.NVIDIA_DEVICE_IDENTITY_CA_SHA256).toBe(
    '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48',
  );
});
